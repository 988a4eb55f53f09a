# CT of MobileNetV3-Small on CIFAR-100 (same setting as the ResNet-50 one).
_base_ = [
    'mmpretrain::mobilenet_v3/mobilenet-v3-small_8xb16_cifar10.py',
    '../../_base_/st_runtime.py',
]

model = dict(head=dict(num_classes=100))
data_preprocessor = dict(
    num_classes=100,
    mean=[129.304, 124.070, 112.434],
    std=[68.170, 65.392, 70.418],
)
max_epochs = 500
train_dataloader = dict(
    batch_size=64, dataset=dict(type='CIFAR100', data_root='data/cifar100')
)
val_dataloader = dict(dataset=dict(type='CIFAR100', data_root='data/cifar100'))
test_dataloader = val_dataloader
param_scheduler = dict(
    _delete_=True,
    type='CosineAnnealingLR',
    by_epoch=True,
    T_max=max_epochs,
    convert_to_iter_based=True,
)
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=64)
# MobileNetV3 stages: a shape-changing block followed by residual blocks.
val_cfg = dict(
    type='mmst.SubnetValLoop', subnets=['smallest'], bn_recal_images=2000
)
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
