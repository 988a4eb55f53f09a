# R50-ST*: Cascade R-CNN R50-FPN, mmdet's 1x schedule and optimiser, ST++
# backbone, finetuned with Stimulative Training.
# Paper, Table VII (SGD), box mAP: R50-ST 41.3, R50-ST* 43.3.
# ST* settings: configs/_base_/st_star.py.
_base_ = [
    './cascade_rcnn_r50_st-backbone_1x_coco.py',
    '../_base_/st_star.py',
]

model = dict(_base_.st_star_model, _delete_=True, architecture=_base_.model)
