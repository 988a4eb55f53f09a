# ST++ for ConvNeXt-T, over mmpretrain's ConvNeXt-T recipe (AdamW, 300
# epochs, Mixup / CutMix, EMA). Not in the paper, whose ImageNet results are
# for ResNets, MobileNetV3 and ViT: no published number. ST++'s knobs as
# resnet50_stpp-a1_in1k.py: 6 sub-networks per iteration from the default
# space (mmst discovers the 3, 3, 9, 3 blocks, docs/backbones.md), random
# smaller inputs (floor(0.43 * 224) .. 224 px), KL without logit magnitude.
_base_ = [
    'mmpretrain::convnext/convnext-tiny_32xb128_in1k.py',
    '../../_base_/st_runtime.py',
    '../../_base_/stpp_classification.py',
]

model = dict(_base_.stpp_model, _delete_=True, architecture=_base_.model)
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
