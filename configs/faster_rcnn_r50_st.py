# R50-ST*: Faster R-CNN R50-FPN 1x with AdamW (lr 1e-4, wd 0.1), ST++ backbone,
# finetuned with Stimulative Training.
# Paper, Table VI (AdamW), box mAP: R50-ST 40.0, R50-ST* 41.9.
# ST* settings: configs/_base_/st_star.py.
_base_ = [
    './mmdet/faster_rcnn_r50_st-backbone_adamw-1x_coco.py',
    './_base_/st_star.py',
]

model = dict(_base_.st_star_model, _delete_=True, architecture=_base_.model)
