# ST++ of the small ViT of vit_ct_fmnist.py, with the knobs of
# resnet20_stpp_fmnist.py (3 sub-networks per iteration from the default
# space, the first 1 .. 6 of the 6 layers; random smaller inputs of 12 ..
# 28 px) except one: the sub-networks are trained on the labels
# (subnet_loss='task'), not with the KL to the main network.
_base_ = ['./vit_ct_fmnist.py', '../_base_/fashion_mnist_stpp.py']

model = dict(
    _base_.stpp_model,
    _delete_=True,
    architecture=_base_.model,
    subnet_loss='task',
)
optim_wrapper = dict(clip_grad=dict(max_norm=5.0))
