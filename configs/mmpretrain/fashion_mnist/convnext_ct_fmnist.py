# Conventional training (CT) of a small ConvNeXt on Fashion-MNIST: 3 stages
# of 2, 2, 4 blocks, widths 32/64/128, a 2 x 2 stem (28 -> 14 -> 7 -> 3
# px). mmst discovers its stages (docs/backbones.md); LayerNorm only, so the
# sub-networks of the loafing view need no BN re-estimation. Data, schedule
# and validation as the ResNet-20 configs; AdamW as ConvNeXt's recipe.
_base_ = ['../_base_/fashion_mnist_resnet20.py']

model = dict(
    backbone=dict(
        _delete_=True,
        _scope_='mmpretrain',  # see ../_base_/fashion_mnist_resnet20.py
        type='ConvNeXt',
        arch=dict(depths=[2, 2, 4], channels=[32, 64, 128]),
        in_channels=1,
        stem_patch_size=2,
        out_indices=(2,),
    ),
    neck=None,  # global pooling and the final norm are in the backbone
    head=dict(in_channels=128),
)
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
)
val_cfg = dict(subnets=[[1, 1, 1], [1, 1, 2], [2, 2, 2]], bn_recal_images=0)
