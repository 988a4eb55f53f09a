# R50-ST: Semantic FPN R50 on Cityscapes with AdamW (lr 5e-4, wd 0.05; the
# paper's setting), mmseg's 80k poly schedule, ST++ ImageNet backbone.
# Paper, Table XII (AdamW), mIoU: R50 torchvision 76.38, R50-ST 77.58.
_base_ = ['./fpn_r50_st-backbone_4xb2-80k_cityscapes-512x1024.py']

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0005, weight_decay=0.05)
)
