# CT of the CIFAR ResNet-50 on CIFAR-100 with the paper's setting: 500
# epochs, batch 64 (1 GPU), SGD, cosine per iteration.
_base_ = [
    'mmpretrain::resnet/resnet50_8xb16_cifar100.py',
    '../../_base_/st_runtime.py',
]

max_epochs = 500
train_dataloader = dict(batch_size=64)
param_scheduler = dict(
    _delete_=True,
    type='CosineAnnealingLR',
    by_epoch=True,
    T_max=max_epochs,
    convert_to_iter_based=True,
)
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=64)
val_cfg = dict(
    type='mmst.SubnetValLoop',
    subnets=['smallest', [2, 2, 3, 2]],
    bn_recal_images=2000,
)
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
