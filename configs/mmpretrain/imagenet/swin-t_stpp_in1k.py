# ST++ for Swin-T, over mmpretrain's Swin-T recipe (AdamW, 300 epochs,
# Mixup / CutMix). Not in the paper, whose ImageNet results are for ResNets,
# MobileNetV3 and ViT: no published number. ST++'s knobs as
# resnet50_stpp-a1_in1k.py: 6 sub-networks per iteration from the default
# space (mmst discovers the 2, 2, 6, 2 blocks, docs/backbones.md), random
# smaller inputs (floor(0.43 * 224) .. 224 px; small maps pad their
# windows), KL without logit magnitude. Never trained by mmst; the small
# Swin of ../fashion_mnist/swin_stpp_fmnist.py did not learn with the KL
# (docs/backbones.md, "The small Swin and the KL"): watch loss_main in the
# first epochs, and use model.subnet_loss='task' if it stays at chance.
_base_ = [
    'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py',
    '../../_base_/st_runtime.py',
    '../../_base_/stpp_classification.py',
]

model = dict(
    _base_.stpp_model,
    _delete_=True,
    # random smaller inputs give stage-4 maps below the 7 x 7 window
    architecture=dict(
        _base_.model, backbone=dict(_base_.model.backbone, pad_small_map=True)
    ),
)
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
