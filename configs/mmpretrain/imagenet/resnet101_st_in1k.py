# ST for ResNet-101 (the paper used the default space for ResNet-101/152);
# the CT recipe's initialisation (zero_init_residual=False) and
# augmentation, inherited through resnet50_st_in1k.py.
_base_ = ['./resnet50_st_in1k.py']

model = dict(architecture=dict(backbone=dict(depth=101)))
