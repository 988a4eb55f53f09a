# R50-ST*: Panoptic FPN R50 1x with AdamW (lr 1e-4, wd 0.1), ST++ backbone,
# finetuned with Stimulative Training.
# Paper, Table VIII (AdamW), PQ: R50-ST 42.5, R50-ST* 43.5.
# ST* settings: configs/_base_/st_star.py.
_base_ = [
    './panoptic_fpn_r50_st-backbone_adamw-1x_coco.py',
    '../_base_/st_star.py',
]

model = dict(_base_.st_star_model, _delete_=True, architecture=_base_.model)
