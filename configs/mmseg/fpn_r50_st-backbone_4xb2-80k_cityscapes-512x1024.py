# R50-ST: Semantic FPN R50 on Cityscapes (512x1024 crops, 4x2 images per
# iteration, 80k iterations), mmseg's optimiser (SGD, lr 0.01, wd 5e-4, poly),
# initialised with the ST++ ImageNet ResNet-50 (configs/_base_/st_backbone.py).
# The paper gives this framework with AdamW only (see the adamw config).
#
# Backbone: mmseg's config uses ResNetV1c (deep 3x3 stem, weights
# open-mmlab://resnet50_v1c), whose stem does not match a plain ResNet-50
# checkpoint. Like the paper, which compares plain R50 weights (torchvision,
# timm, ST++), this uses mmseg's plain ``ResNet`` (7x7 stem), depth 50,
# pytorch style; ``pretrained`` (model level) is cleared because mmseg
# forbids it together with the backbone's ``init_cfg``.
_base_ = [
    'mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/st_backbone.py',
]

model = dict(
    pretrained=None,
    backbone=dict(type='ResNet', init_cfg=_base_.st_backbone_init),
)
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
