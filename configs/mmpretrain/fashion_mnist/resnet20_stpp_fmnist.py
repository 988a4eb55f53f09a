# ST++ in a small setting: 3 sub-networks per iteration (ImageNet: 6), KL
# without logit magnitude (LayerNorm-normalised logits, also for the main
# CE), random smaller inputs (floor(0.43 * 28) = 12 .. 28 px), default space
# (ResNet-50's space3 has no analogue for 3 x 3 blocks).
_base_ = ['../_base_/fashion_mnist_resnet20.py']

model = dict(
    _delete_=True,
    type='mmst.StimulativeTraining',
    architecture=_base_.model,
    num_subnets=3,
    space=dict(depths='default'),
    input_resize=dict(ratio_range=(0.43, 1.0)),
    subnet_loss='kl',
    logit_norm='layernorm',
)
