from mmst.utils import has_package

__all__ = []
if has_package('mmpretrain'):
    from .elastic_resnet import (
        ElasticResNet,
        ElasticResNet_CIFAR,
        keep_first_blocks,
    )

    __all__ += ['ElasticResNet', 'ElasticResNet_CIFAR', 'keep_first_blocks']
