# R50-ST*: Faster R-CNN R50-FPN, mmdet's 1x schedule and optimiser, ST++
# backbone, finetuned with Stimulative Training.
# Paper, Table VII (SGD), box mAP: R50-ST 38.3, R50-ST* 40.1.
# ST* settings: configs/_base_/st_star.py.
_base_ = [
    './faster_rcnn_r50_st-backbone_1x_coco.py',
    '../_base_/st_star.py',
]

model = dict(_base_.st_star_model, _delete_=True, architecture=_base_.model)
