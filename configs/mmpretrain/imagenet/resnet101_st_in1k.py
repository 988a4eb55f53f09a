# ST for ResNet-101 (the paper used the default space for ResNet-101/152).
_base_ = ['./resnet50_st_in1k.py']

model = dict(architecture=dict(backbone=dict(depth=101)))
