from mmst.utils import has_package

__all__ = []
if has_package('mmpretrain'):
    from .lighting import ClippedLighting
    from .uniform_augment import UniformAugment

    __all__ += ['ClippedLighting', 'UniformAugment']
