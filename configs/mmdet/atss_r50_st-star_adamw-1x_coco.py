# R50-ST*: ATSS R50-FPN 1x with AdamW (lr 1e-4, wd 0.1), ST++ backbone,
# finetuned with Stimulative Training.
# Paper, Table VI (AdamW), box mAP: R50-ST 41.7, R50-ST* 43.6.
# ST* settings: configs/_base_/st_star.py.
_base_ = [
    './atss_r50_st-backbone_adamw-1x_coco.py',
    '../_base_/st_star.py',
]

model = dict(_base_.st_star_model, _delete_=True, architecture=_base_.model)
