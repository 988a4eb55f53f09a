# ST (NeurIPS'22): one sub-network per iteration from the default space
# (first 1..5 blocks of each stage), trained against the main network's
# logits with plain KL, at full input size.
_base_ = ['../_base_/fashion_mnist_resnet20.py']

model = dict(
    _delete_=True,
    type='mmst.StimulativeTraining',
    architecture=_base_.model,
    num_subnets=1,
    space=dict(depths='default'),
    subnet_loss='kl',
    logit_norm='none',
)
