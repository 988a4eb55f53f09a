# Conventional training (CT) of ResNet-50 with the ST papers' baseline
# recipe (docs/method.md, 76.70% top-1): 200 epochs, batch 512 (8 GPUs x 64),
# SGD nesterov lr 0.2 wd 1e-4, cosine per iteration without warm-up,
# ColorJitter 0.4; val 256 -> 224. Data: data/imagenet in mmpretrain's
# layout (train/, val/, meta/{train,val}.txt). docs/method.md lists what
# differs from the authors' script.
_base_ = [
    'mmpretrain::resnet/resnet50_8xb32_in1k.py',
    '../../_base_/st_runtime.py',
]

# The authors' model: Kaiming-normal convolutions and every BN weight 1.
# mmpretrain's ResNet zero-initialises the last BN of each block by default
# (zero_init_residual=True, Goyal et al. 2017); the script does not.
model = dict(backbone=dict(zero_init_residual=False))

# No lighting noise: the script's AlexNet PCA lighting (alphastd 0.1) uses
# the eigenvalues of 0..1 images on 0..255 images, a shift of about 0.01
# grey levels that the cast back to uint8 truncates (at most one level).
# Real lighting (eigenvalues x 255, rows in BGR order as mmpretrain's
# ResNeSt configs), clipped to 0..255, is this transform; to use it, put
# `_base_.real_lighting` after ColorJitter in a derived config's
# train_pipeline (docs/method.md).
real_lighting = dict(
    type='mmst.ClippedLighting',
    eigval=[55.4625, 4.7940, 1.1475],
    eigvec=[
        [-0.5836, -0.6948, 0.4203],
        [-0.5808, -0.0045, -0.8140],
        [-0.5675, 0.7192, 0.4009],
    ],
    alphastd=0.1,
    to_rgb=False,
)
train_crop = 224
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(_scope_='mmpretrain', type='RandomResizedCrop', scale=train_crop),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        _scope_='mmpretrain',
        type='ColorJitter',
        brightness=0.4,
        contrast=0.4,
        saturation=0.4,
    ),
    dict(_scope_='mmpretrain', type='PackInputs'),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=64)
test_dataloader = val_dataloader

max_epochs = 200
optim_wrapper = dict(
    optimizer=dict(
        type='SGD', lr=0.2, momentum=0.9, weight_decay=1e-4, nesterov=True
    )
)
param_scheduler = dict(
    _delete_=True,
    type='CosineAnnealingLR',
    by_epoch=True,
    T_max=max_epochs,
    convert_to_iter_based=True,
)
train_cfg = dict(max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
# Loafing view at each validation: smallest and largest sub-networks, each
# with BN statistics re-estimated on 2000 training images.
val_cfg = dict(
    type='mmst.SubnetValLoop',
    subnets=['smallest', 'largest'],
    bn_recal_images=2000,
)
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
