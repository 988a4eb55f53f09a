# R50-ST: FCOS R50-FPN (GN head), mmdet's 1x schedule and optimiser (SGD, lr
# 0.01, momentum 0.9, wd 1e-4, bias lr x2, no bias decay, grad clip 35; 16
# images per iteration), initialised with the ST++ ImageNet ResNet-50
# (configs/_base_/st_backbone.py).
# Paper, Table VII (SGD), box mAP: R50 torchvision 36.3, R50-ST 37.7.
_base_ = [
    'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py',
    '../_base_/st_backbone.py',
]

# FCOS ships only caffe-style R50 configs; the ST++ backbone is a
# pytorch-style ResNet-50 (stride on the 3x3 conv, RGB input normalised with
# the ImageNet mean / std), set here as in mmdet's pytorch-style detectors.
model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
    ),
    backbone=dict(
        style='pytorch',
        norm_cfg=dict(type='BN', requires_grad=True),
        init_cfg=_base_.st_backbone_init,
    ),
)
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
