from mmst.utils import has_package

from .subnet_backbone import (
    SkippedBlock,
    build_subnet_backbone,
    fix_subnet,
)

__all__ = ['SkippedBlock', 'build_subnet_backbone', 'fix_subnet']
if has_package('mmpretrain'):
    from .elastic_resnet import (
        ElasticResNet,
        ElasticResNet_CIFAR,
        keep_first_blocks,
    )

    __all__ += ['ElasticResNet', 'ElasticResNet_CIFAR', 'keep_first_blocks']
