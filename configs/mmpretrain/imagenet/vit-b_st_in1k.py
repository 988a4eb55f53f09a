# ST for ViT-B/16 (paper: +1.76% top-1): the encoder's 12 layers form one
# stage; a sub-network keeps the first k of them (k uniform in 1..12).
_base_ = [
    'mmpretrain::vision_transformer/vit-base-p16_64xb64_in1k.py',
    '../../_base_/st_runtime.py',
    '../../_base_/st_classification.py',
]

model = dict(_base_.st_model, _delete_=True, architecture=_base_.model)
val_cfg = dict(type='mmst.SubnetValLoop', subnets=[[6]], bn_recal_images=0)
# checkpoints a kill cannot break, exact resume (docs/troubleshooting.md)
default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook'))
