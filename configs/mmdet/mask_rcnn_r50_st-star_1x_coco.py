# R50-ST*: Mask R-CNN R50-FPN, mmdet's 1x schedule and optimiser, ST++
# backbone, finetuned with Stimulative Training.
# Paper, Table XI (SGD), box / mask mAP: R50-ST 39.0 / 35.4, R50-ST* 40.6 /
# 37.0.
# ST* settings: configs/_base_/st_star.py.
_base_ = ['./mask_rcnn_r50_st-backbone_1x_coco.py', '../_base_/st_star.py']

model = dict(_base_.st_star_model, _delete_=True, architecture=_base_.model)
