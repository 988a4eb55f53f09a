# ST (NeurIPS'22) for classifiers, shared by the mmpretrain ST configs: one
# sub-network per iteration from the default space (first 1..n blocks of
# each stage), trained at full input size with plain KL to the main
# network's logits. A config uses it as
#   model = dict(_base_.st_model, _delete_=True, architecture=_base_.model)
st_model = dict(
    type='mmst.StimulativeTraining',
    num_subnets=1,
    space=dict(depths='default'),
    subnet_loss='kl',
    # distill: the default KL (T = 1, weight 1, as the authors'); not set
    # here, so that subnet_loss='task' can be chosen on top of this config
    logit_norm='none',
)
