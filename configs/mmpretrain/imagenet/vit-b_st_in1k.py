# ST for ViT-B/16 (paper: +1.76% top-1): the encoder's 12 layers form one
# stage; a sub-network keeps the first k of them (k uniform in 1..12).
# Keeps ST's plain KL from the first iteration (no subnet_schedule), the
# setting the measurements support: on the small Fashion-MNIST ViT trained
# from scratch, ST's knobs (one sub-network, plain KL, no smaller inputs)
# left the main network learning as CT's (main cross-entropy after 40
# iterations 1.65 +- 0.05, CT 1.65 +- 0.06, 3 seeds), while ST++'s KL- did
# not, started late or warmed up (2.26-2.32; docs/backbones.md, "The small
# Swin, the small ViT and the KL"). Not trained by mmst on ImageNet.
_base_ = [
    'mmpretrain::vision_transformer/vit-base-p16_64xb64_in1k.py',
    '../../_base_/st_runtime.py',
    '../../_base_/st_classification.py',
]

model = dict(_base_.st_model, _delete_=True, architecture=_base_.model)
val_cfg = dict(type='mmst.SubnetValLoop', subnets=[[6]], bn_recal_images=0)
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
