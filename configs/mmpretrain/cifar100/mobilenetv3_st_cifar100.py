# ST of MobileNetV3-Small on CIFAR-100 (paper: +3.68%): each stage keeps its
# shape-changing block and the first k of its residual blocks.
_base_ = ['./mobilenetv3_ct_cifar100.py']

model = dict(
    _delete_=True,
    type='mmst.StimulativeTraining',
    architecture=_base_.model,
    num_subnets=1,
    space=dict(depths='default'),
    subnet_loss='kl',
    logit_norm='none',
)
