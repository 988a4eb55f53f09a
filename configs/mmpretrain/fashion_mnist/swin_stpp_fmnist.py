# ST++ of the small Swin of swin_ct_fmnist.py, with the knobs of
# resnet20_stpp_fmnist.py: 3 sub-networks per iteration from the default
# space, random smaller inputs (12 .. 28 px), KL without logit magnitude.
_base_ = ['./swin_ct_fmnist.py']

model = dict(
    _delete_=True,
    type='mmst.StimulativeTraining',
    architecture=_base_.model,
    num_subnets=3,
    space=dict(depths='default'),
    input_resize=dict(ratio_range=(0.43, 1.0)),
    subnet_loss='kl',
    logit_norm='layernorm',
    normalize_main_logits=False,
)
optim_wrapper = dict(clip_grad=dict(max_norm=5.0))
