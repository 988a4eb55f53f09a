# R50-ST: Panoptic FPN R50, mmdet's 1x schedule and optimiser (SGD, lr 0.02,
# momentum 0.9, wd 1e-4; 16 images per iteration), initialised with the ST++
# ImageNet ResNet-50 (configs/_base_/st_backbone.py).
# Paper, Table IX (SGD), PQ: R50 torchvision 39.8, R50-ST 40.8.
_base_ = [
    'mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py',
    '../_base_/st_backbone.py',
]

model = dict(backbone=dict(init_cfg=_base_.st_backbone_init))
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
