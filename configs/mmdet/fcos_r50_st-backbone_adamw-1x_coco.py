# R50-ST: FCOS R50-FPN (GN head) 1x with AdamW (lr 1e-4, wd 0.1, no decay on
# norm layers: the paper's setting, as mmdet's
# faster-rcnn_r50-tnr-pre_fpn_1x_coco).
# Paper, Table VI (AdamW), box mAP: R50 torchvision 36.0, R50-ST 38.1.
_base_ = ['./fcos_r50_st-backbone_1x_coco.py']

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, weight_decay=0.1),
    paramwise_cfg=dict(norm_decay_mult=0.0, bypass_duplicate=True),
)
