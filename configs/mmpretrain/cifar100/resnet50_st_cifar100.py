# ST of the CIFAR ResNet-50 on CIFAR-100 (paper: +4.53%).
_base_ = ['./resnet50_ct_cifar100.py']

model = dict(
    _delete_=True,
    type='mmst.StimulativeTraining',
    architecture=_base_.model,
    num_subnets=1,
    space=dict(depths='default'),
    subnet_loss='kl',
    logit_norm='none',
)
