# R50-ST: ATSS R50-FPN, mmdet's 1x schedule and optimiser (SGD, lr 0.01,
# momentum 0.9, wd 1e-4; 16 images per iteration), initialised with the ST++
# ImageNet ResNet-50 (configs/_base_/st_backbone.py).
# Paper, Table VII (SGD), box mAP: R50 torchvision 39.3, R50-ST 41.0.
_base_ = [
    'mmdet::atss/atss_r50_fpn_1x_coco.py',
    '../_base_/st_backbone.py',
]

model = dict(backbone=dict(init_cfg=_base_.st_backbone_init))
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
