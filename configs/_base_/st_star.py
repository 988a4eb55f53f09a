# ST* finetuning (paper Sec. 4.2.2), shared by every downstream ST* config:
# each iteration trains the full model on the batch, then `num_subnets`
# sub-networks of the backbone (ST++'s inter-stage rule, which is space3 on
# ResNet-50: stage depths {3}, {3,4}, {3..6}, {3}; for other depths see
# docs/method.md; frozen stages always full), each on the batch resized
# to a random shorter side in [0.43, 1] x the batch's (ground truth rescaled
# alike), with the task's own losses; one optimizer step.
# N = 6 as in ST++'s ImageNet training (the paper states no N for
# finetuning); fewer: --cfg-options model.num_subnets=1.
# A config uses it as
#   model = dict(_base_.st_star_model, _delete_=True,
#                architecture=_base_.model)
_base_ = ['./st_runtime.py']

st_star_model = dict(
    type='mmst.StimulativeTraining',
    num_subnets=6,
    space=dict(depths='inter-stage'),
    input_resize=dict(ratio_range=(0.43, 1.0)),
    subnet_loss='task',
    bn_stats='main',
)
