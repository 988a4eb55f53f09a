# Conventional training (CT) of a small Vision Transformer on Fashion-MNIST:
# 6 encoder layers of width 64 (4 heads, feedforward 128), 4 x 4 patches
# (7 x 7 tokens and a class token). mmst discovers its encoder layers as one
# stage (docs/backbones.md); LayerNorm only, no BN re-estimation. Smaller
# inputs work: mmpretrain's VisionTransformer interpolates its position
# embeddings to the input's patch grid (12 px -> 3 x 3 tokens). Data,
# schedule and validation as the ResNet-20 configs; AdamW as ViT's recipe.
_base_ = ['../_base_/fashion_mnist_resnet20.py']

model = dict(
    backbone=dict(
        _delete_=True,
        _scope_='mmpretrain',  # see ../_base_/fashion_mnist_resnet20.py
        type='VisionTransformer',
        arch=dict(
            embed_dims=64, num_layers=6, num_heads=4, feedforward_channels=128
        ),
        in_channels=1,
        img_size=28,
        patch_size=4,
    ),
    neck=None,  # the class token is the feature
    head=dict(in_channels=64),
)
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05),
)
# the first 1, 2 and 4 of the 6 layers
val_cfg = dict(subnets=[[1], [2], [4]], bn_recal_images=0)
