# ST of the CIFAR ResNet-50 on CIFAR-100 (paper: +4.53%).
_base_ = ['./resnet50_ct_cifar100.py', '../../_base_/st_classification.py']

model = dict(_base_.st_model, _delete_=True, architecture=_base_.model)
