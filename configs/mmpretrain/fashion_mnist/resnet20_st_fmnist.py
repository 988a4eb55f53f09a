# ST (NeurIPS'22): one sub-network per iteration from the default space
# (first 1..5 blocks of each stage), trained against the main network's
# logits with plain KL, at full input size.
_base_ = [
    '../_base_/fashion_mnist_resnet20.py',
    '../../_base_/st_classification.py',
]

model = dict(_base_.st_model, _delete_=True, architecture=_base_.model)
