# ST of MobileNetV3-Small on CIFAR-100 (paper: +3.68%): each stage keeps its
# shape-changing block and the first k of its residual blocks.
_base_ = ['./mobilenetv3_ct_cifar100.py', '../../_base_/st_classification.py']

model = dict(_base_.st_model, _delete_=True, architecture=_base_.model)
