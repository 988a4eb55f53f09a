# R50-ST*: Mask R-CNN R50-FPN 1x with AdamW (lr 1e-4, wd 0.1), ST++ backbone,
# finetuned with Stimulative Training.
# Paper, Table X (AdamW), box / mask mAP: R50-ST 40.7 / 37.1, R50-ST* 42.5 /
# 38.6.
# ST* settings: configs/_base_/st_star.py.
_base_ = [
    './mask_rcnn_r50_st-backbone_adamw-1x_coco.py',
    '../_base_/st_star.py',
]

model = dict(_base_.st_star_model, _delete_=True, architecture=_base_.model)
