# ST++ of the small Swin of swin_ct_fmnist.py, with the knobs of
# resnet20_stpp_fmnist.py (3 sub-networks per iteration from the default
# space, random smaller inputs of 12 .. 28 px) except one: the sub-networks
# are trained on the labels (subnet_loss='task', as ST* does downstream),
# not with the KL to the main network. Trained from scratch at this scale,
# every KL variant measured kept this Swin's main network near chance or
# far behind CT's (LN, L2 or no logit normalisation, N = 1, a third of the
# weight, no drop path): docs/backbones.md, "The small Swin and the KL".
_base_ = ['./swin_ct_fmnist.py', '../_base_/fashion_mnist_stpp.py']

model = dict(
    _base_.stpp_model,
    _delete_=True,
    architecture=_base_.model,
    subnet_loss='task',
)
optim_wrapper = dict(clip_grad=dict(max_norm=5.0))
