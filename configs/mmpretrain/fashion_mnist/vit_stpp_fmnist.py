# ST++ of the small ViT of vit_ct_fmnist.py, with the knobs of
# resnet20_stpp_fmnist.py: 3 sub-networks per iteration from the default
# space (the first 1 .. 6 of the 6 layers), random smaller inputs (12 .. 28
# px), KL without logit magnitude.
_base_ = ['./vit_ct_fmnist.py', '../_base_/fashion_mnist_stpp.py']

model = dict(_base_.stpp_model, _delete_=True, architecture=_base_.model)
optim_wrapper = dict(clip_grad=dict(max_norm=5.0))
