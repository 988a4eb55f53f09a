# R50-ST: SimpleBaseline2D (top-down heatmap, ResNet-50) on COCO keypoints,
# 256x192 input, mmpose's schedule and optimiser (Adam, lr 5e-4, 210 epochs,
# 8x64 images per iteration; the paper's setting), initialised with the ST++
# ImageNet ResNet-50 (configs/_base_/st_backbone.py; mmpose's ResNet is
# pytorch style, like the checkpoint).
# Paper, Table XIII, AP: R50 torchvision 0.7173, R50-ST 0.7223.
_base_ = [
    'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
    'td-hm_res50_8xb64-210e_coco-256x192.py',
    '../_base_/st_backbone.py',
]

model = dict(backbone=dict(init_cfg=_base_.st_backbone_init))
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
