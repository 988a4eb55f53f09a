# ST++ in the small setting of METHOD.md's pilot: 3 sub-networks per
# iteration, KL without logit magnitude (L2), random smaller inputs
# (14..28 px), default space.
_base_ = ['../_base_/fashion_mnist_resnet32.py']

model = dict(
    _delete_=True,
    type='mmst.StimulativeTraining',
    architecture=_base_.model,
    num_subnets=3,
    space=dict(depths='default'),
    input_resize=dict(size_range=(14, 28)),
    subnet_loss='kl',
    logit_norm='l2',
)
