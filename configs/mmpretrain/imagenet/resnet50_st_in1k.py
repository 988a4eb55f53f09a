# ST (NeurIPS'22, 77.56%): the CT recipe plus one sub-network per iteration
# from the default space, trained with plain KL to the main network.
_base_ = ['./resnet50_ct_in1k.py']

model = dict(
    _delete_=True,
    type='mmst.StimulativeTraining',
    architecture=_base_.model,
    num_subnets=1,
    space=dict(depths='default'),
    subnet_loss='kl',
    distill=dict(temperature=1.0, loss_weight=1.0),
    logit_norm='none',
)
