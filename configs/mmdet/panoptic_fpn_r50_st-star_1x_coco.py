# R50-ST*: Panoptic FPN R50, mmdet's 1x schedule and optimiser, ST++ backbone,
# finetuned with Stimulative Training.
# Paper, Table IX (SGD), PQ: R50-ST 40.8, R50-ST* 41.3.
# ST* settings: configs/_base_/st_star.py.
_base_ = [
    './panoptic_fpn_r50_st-backbone_1x_coco.py',
    '../_base_/st_star.py',
]

model = dict(_base_.st_star_model, _delete_=True, architecture=_base_.model)
