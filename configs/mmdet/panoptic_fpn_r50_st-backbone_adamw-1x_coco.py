# R50-ST: Panoptic FPN R50 1x with AdamW (lr 1e-4, wd 0.1, no decay on norm
# layers: the paper's setting, as mmdet's faster-rcnn_r50-tnr-pre_fpn_1x_coco).
# Paper, Table VIII (AdamW), PQ: R50 torchvision 41.8, R50-ST 42.5.
_base_ = ['./panoptic_fpn_r50_st-backbone_1x_coco.py']

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.1),
    paramwise_cfg=dict(norm_decay_mult=0.0, bypass_duplicate=True),
)
