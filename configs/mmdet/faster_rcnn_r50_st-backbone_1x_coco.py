# R50-ST: Faster R-CNN R50-FPN, mmdet's 1x schedule and optimiser (SGD, lr
# 0.02, momentum 0.9, wd 1e-4; 16 images per iteration), initialised with the
# ST++ ImageNet ResNet-50 (configs/_base_/st_backbone.py).
# Paper, Table VII (SGD), box mAP: R50 torchvision 37.2, R50-ST 38.3.
_base_ = [
    'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py',
    '../_base_/st_backbone.py',
]

model = dict(backbone=dict(init_cfg=_base_.st_backbone_init))
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
