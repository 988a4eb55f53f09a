# ST++'s ImageNet knobs for classifiers other than the papers' ResNets
# (resnet50_stpp-a1_in1k.py spells out its own, with space3): 6 sub-networks
# per iteration from the default space, random smaller inputs
# (floor(0.43 * crop) .. crop px), KL without logit magnitude (LayerNorm
# logits, also for the main CE). A config uses it as
#   model = dict(_base_.stpp_model, _delete_=True, architecture=_base_.model)
stpp_model = dict(
    type='mmst.StimulativeTraining',
    num_subnets=6,
    space=dict(depths='default'),
    input_resize=dict(ratio_range=(0.43, 1.0)),
    subnet_loss='kl',
    # distill: the default KL (T = 1, weight 1, as the authors'); not set
    # here, so that subnet_loss='task' can be chosen on top of this config
    logit_norm='layernorm',
    logit_amplitude=1.0,
)
