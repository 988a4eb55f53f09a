# R50-ST: Mask R-CNN R50-FPN, mmdet's 1x schedule and optimiser (SGD, lr 0.02,
# momentum 0.9, wd 1e-4; 16 images per iteration), initialised with the ST++
# ImageNet ResNet-50 (configs/_base_/st_backbone.py).
# Paper, Table XI (SGD), box / mask mAP: R50 torchvision 37.8 / 34.5, R50-ST
# 39.0 / 35.4.
_base_ = [
    'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    '../_base_/st_backbone.py',
]

model = dict(backbone=dict(init_cfg=_base_.st_backbone_init))
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
