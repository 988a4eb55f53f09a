from mmst.utils import has_package

__all__ = []
if has_package('mmpretrain'):
    from .uniform_augment import UniformAugment

    __all__ += ['UniformAugment']
