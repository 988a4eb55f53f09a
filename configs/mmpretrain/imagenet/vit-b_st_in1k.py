# ST for ViT-B/16 (paper: +1.76% top-1): the encoder's 12 layers form one
# stage; a sub-network keeps the first k of them (k uniform in 1..12).
_base_ = [
    'mmpretrain::vision_transformer/vit-base-p16_64xb64_in1k.py',
    '../../_base_/st_runtime.py',
]

model = dict(
    _delete_=True,
    type='mmst.StimulativeTraining',
    architecture=_base_.model,
    num_subnets=1,
    space=dict(depths='default'),
    subnet_loss='kl',
    logit_norm='none',
)
val_cfg = dict(type='mmst.SubnetValLoop', subnets=[[6]], bn_recal_images=0)
