# Conventional training (CT) of a small Swin Transformer on Fashion-MNIST:
# 3 stages of 2, 2, 4 blocks, widths 32/64/128, 2 x 2 patches (14 x 14
# tokens), 7 x 7 windows. mmst discovers its stages (docs/backbones.md);
# LayerNorm only, no BN re-estimation. Data, schedule and validation as
# the ResNet-20 configs; AdamW as Swin's recipe.
_base_ = ['../_base_/fashion_mnist_resnet20.py']

model = dict(
    backbone=dict(
        _delete_=True,
        _scope_='mmpretrain',  # see ../_base_/fashion_mnist_resnet20.py
        type='SwinTransformer',
        arch=dict(embed_dims=32, depths=[2, 2, 4], num_heads=[2, 4, 8]),
        in_channels=1,
        img_size=28,
        patch_size=2,
        window_size=7,
        # the 4 x 4 tokens of stage 3 (and smaller inputs): padded windows
        pad_small_map=True,
        out_indices=(2,),
    ),
    head=dict(in_channels=128),
)
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
)
val_cfg = dict(subnets=[[1, 1, 1], [1, 1, 2], [2, 2, 2]], bn_recal_images=0)
