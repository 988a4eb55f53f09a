# R50-ST*: ATSS R50-FPN, mmdet's 1x schedule and optimiser, ST++ backbone,
# finetuned with Stimulative Training.
# Paper, Table VII (SGD), box mAP: R50-ST 41.0, R50-ST* 42.6.
# ST* settings: configs/_base_/st_star.py.
_base_ = ['./atss_r50_st-backbone_1x_coco.py', '../_base_/st_star.py']

model = dict(_base_.st_star_model, _delete_=True, architecture=_base_.model)
