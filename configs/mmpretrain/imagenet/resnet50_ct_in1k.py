# Conventional training (CT) of ResNet-50 with the ST papers' baseline
# recipe (METHOD.md, 76.70% top-1): 200 epochs, batch 512 (8 GPUs x 64),
# SGD nesterov lr 0.2 wd 1e-4, cosine per iteration without warm-up,
# ColorJitter 0.4 + PCA lighting 0.1; val 256 -> 224. Data: data/imagenet
# in mmpretrain's layout (train/, val/, meta/{train,val}.txt).
_base_ = [
    'mmpretrain::resnet/resnet50_8xb32_in1k.py',
    '../../_base_/st_runtime.py',
]

# PCA lighting on the 0-255 scale, BGR order (as mmpretrain's ResNeSt)
EIGVAL = [55.4625, 4.7940, 1.1475]
EIGVEC = [
    [-0.5836, -0.6948, 0.4203],
    [-0.5808, -0.0045, -0.8140],
    [-0.5675, 0.7192, 0.4009],
]
train_crop = 224
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=train_crop),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4),
    dict(
        type='Lighting',
        eigval=EIGVAL,
        eigvec=EIGVEC,
        alphastd=0.1,
        to_rgb=False,
    ),
    dict(type='PackInputs'),
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
