# ST++ in a small setting, shared by the Fashion-MNIST ST++ configs: 3
# sub-networks per iteration (ImageNet: 6), KL without logit magnitude
# (LayerNorm-normalised teacher and students), random smaller inputs
# (floor(0.43 * 28) = 12 .. 28 px), default space. A config uses it as
#   model = dict(_base_.stpp_model, _delete_=True, architecture=_base_.model)
# Departure from the ImageNet recipe: the main CE stays on the raw logits
# (resnet20_stpp_fmnist.py says why).
stpp_model = dict(
    type='mmst.StimulativeTraining',
    num_subnets=3,
    space=dict(depths='default'),
    input_resize=dict(ratio_range=(0.43, 1.0)),
    subnet_loss='kl',
    logit_norm='layernorm',
    normalize_main_logits=False,
)
