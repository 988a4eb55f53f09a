"""UniformAugment as the ST++ authors ran it (the A2 ImageNet recipe)."""

from typing import Callable, Dict, List, Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpretrain.datasets.transforms import (
    AutoContrast,
    Contrast,
    Equalize,
    Posterize,
    Solarize,
)
from PIL import Image, ImageEnhance

from mmst.registry import TRANSFORMS
from mmst.settings import check_int, check_number, invalid

# One drawn operation: (name, level, negative). ``negative`` flips the sign
# of the geometric operations (rotate, shear, translate) and is ignored by
# the others.
Draw = Tuple[str, int, bool]


def _with_pillow(img: np.ndarray, fn: Callable) -> np.ndarray:
    """Run ``fn`` on ``img`` (H x W x 3 BGR or H x W, uint8) as a Pillow
    image in RGB order and return the result in ``img``'s layout."""
    rgb = img[..., ::-1] if img.ndim == 3 else img
    out = np.asarray(fn(Image.fromarray(np.ascontiguousarray(rgb))))
    return np.ascontiguousarray(out[..., ::-1] if img.ndim == 3 else out)


@TRANSFORMS.register_module()
class UniformAugment(BaseTransform):
    """UniformAugment with the operations, levels and ranges of the ST++
    authors' A2 ImageNet run.

    Per image, ``num_ops`` operations are drawn uniformly with replacement
    from the 14 of :attr:`OPS`; each is applied with probability ``prob``
    at a level drawn uniformly from ``0 .. num_levels - 1``, scaled linearly
    to its range (``L = num_levels - 1``; ``int`` truncates):

    =============  =====================================  ===============
    operation      parameter at level ``l``               range (L = 30)
    =============  =====================================  ===============
    Identity       -                                      -
    AutoContrast   -                                      -
    Equalize       -                                      -
    Rotate         ``+-int(30 l / L)`` degrees            0 .. 30
    Solarize       threshold ``256 - int(256 l / L)``     256 .. 0
    Color          factor ``0.1 + 1.8 l / L``             0.1 .. 1.9
    Posterize      ``8 - int(4 l / L)`` bits kept         8 .. 4
    Contrast       factor ``0.1 + 1.8 l / L``             0.1 .. 1.9
    Brightness     factor ``0.1 + 1.8 l / L``             0.1 .. 1.9
    Sharpness      factor ``0.1 + 1.8 l / L``             0.1 .. 1.9
    ShearX/Y       ``+-0.3 l / L`` (shear factor)         0 .. 0.3
    TranslateX/Y   ``+-int(10 l / L)`` pixels             0 .. 10
    =============  =====================================  ===============

    The sign of the rotation, shear and translation is drawn with
    probability 0.5 each. Pixels moved in from outside the image are
    ``pad_val`` (Pillow's black). With the defaults, at least one of the two
    drawn operations is applied to 3/4 of the images.

    Source: the authors' ``train.py`` (github Sunshine-Ye/NIPS22-ST,
    ``--train_trans with_UA``) calls ``UniAugment`` of TrivialAugment's
    ``aug_lib.py`` (github automl/trivialaugment) with its default search
    space ``fixed_standard`` and 31 levels. That space is TrivialAugment's,
    not the UniformAugment paper's (LingChen et al., 2020: no Invert or
    Cutout here, translations of 10 pixels rather than 45% of the size).

    Every operation gives the pixels of the Pillow call it stands for:
    AutoContrast, Equalize, Solarize, Posterize and Contrast are
    mmpretrain's transforms (``prob=1``), the translations
    ``mmcv.imtranslate`` by whole pixels; Color, Brightness, Sharpness,
    Rotate and Shear call Pillow itself, because mmcv's versions differ
    from it: by up to 2 grey levels (Color: grey conversion; Brightness:
    rounding at some levels), at the border (Sharpness) or by a sub-pixel
    offset of the sampling grid (nearest-neighbour Rotate and Shear).

    Required keys: ``img`` (H x W x 3 BGR or H x W, uint8).
    Modified keys: ``img`` (same shape and dtype).

    Args:
        num_ops (int): Operations drawn per image, >= 1. Defaults to 2.
        prob (float): Probability in [0, 1] of applying each drawn
            operation. Defaults to 0.5.
        num_levels (int): Number of levels, >= 2; level ``num_levels - 1``
            is the end of each range. Defaults to 31.
        pad_val (int): Grey level in [0, 255] of pixels moved in by
            rotate, shear and translate. Defaults to 0.
    """

    OPS = (
        'Identity',
        'AutoContrast',
        'Equalize',
        'Rotate',
        'Solarize',
        'Color',
        'Posterize',
        'Contrast',
        'Brightness',
        'Sharpness',
        'ShearX',
        'ShearY',
        'TranslateX',
        'TranslateY',
    )
    # (min, max) of each parameter before the level scaling.
    RANGES = dict(
        rotate=(0, 30),
        solarize=(0, 256),
        posterize=(4, 8),
        enhance=(0.1, 1.9),
        shear=(0.0, 0.3),
        translate=(0, 10),
    )

    def __init__(
        self,
        num_ops: int = 2,
        prob: float = 0.5,
        num_levels: int = 31,
        pad_val: int = 0,
    ) -> None:
        # Errors name the key (a SettingError, a ValueError);
        # mmst.apis.check_config puts the transform's place in the config
        # in front (train_dataloader.dataset.pipeline[3].num_ops).
        check_int('num_ops', num_ops, 1)
        check_int('num_levels', num_levels, 2)
        if not 0 <= check_number('prob', prob) <= 1:
            raise invalid('prob', prob, '0 <= prob <= 1')
        if (
            isinstance(pad_val, bool)
            or not isinstance(pad_val, int)
            or not 0 <= pad_val <= 255
        ):
            raise invalid('pad_val', pad_val, 'an integer in [0, 255]')
        self.num_ops = num_ops
        self.prob = prob
        self.num_levels = num_levels
        self.pad_val = pad_val
        # mmpretrain's operations, one instance per level, always applied
        self._upstream: Dict[str, List[BaseTransform]] = dict(
            AutoContrast=[AutoContrast(prob=1.0)] * num_levels,
            Equalize=[Equalize(prob=1.0)] * num_levels,
            Solarize=[
                Solarize(thr=self.parameter('Solarize', lv), prob=1.0)
                for lv in range(num_levels)
            ],
            Posterize=[
                Posterize(bits=self.parameter('Posterize', lv), prob=1.0)
                for lv in range(num_levels)
            ],
        )
        self._upstream['Contrast'] = [
            Contrast(
                magnitude=self.parameter('Contrast', lv) - 1,
                prob=1.0,
                random_negative_prob=0.0,
            )
            for lv in range(num_levels)
        ]

    def parameter(self, name: str, level: int):
        """The parameter of operation ``name`` at ``level``: degrees
        (Rotate), threshold (Solarize), bits (Posterize), enhancement factor
        (Color, Contrast, Brightness, Sharpness), shear factor (ShearX/Y),
        pixels (TranslateX/Y), before the random sign; None for Identity,
        AutoContrast and Equalize."""
        if name not in self.OPS:
            raise KeyError(
                f'UniformAugment: operation {name!r} is unknown; '
                f'allowed: {self.OPS}'
            )
        if not 0 <= level < self.num_levels:
            raise ValueError(
                f'UniformAugment: level={level!r} is invalid; allowed: '
                f'0 .. {self.num_levels - 1}'
            )
        top = self.num_levels - 1
        r = self.RANGES
        if name == 'Rotate':
            return int(level * r['rotate'][1] / top)
        if name == 'Solarize':
            return r['solarize'][1] - int(level * r['solarize'][1] / top)
        if name == 'Posterize':
            low, high = r['posterize']
            return high - int(level * (high - low) / top)
        if name in ('Color', 'Contrast', 'Brightness', 'Sharpness'):
            low, high = r['enhance']
            return float(level) * (high - low) / top + low
        if name in ('ShearX', 'ShearY'):
            return float(level) * r['shear'][1] / top
        if name in ('TranslateX', 'TranslateY'):
            return int(level * r['translate'][1] / top)
        return None

    @cache_randomness
    def random_ops(self) -> List[Draw]:
        """Draw the operations to apply to one image, in order: the
        ``(name, level, negative)`` of each drawn operation that passed its
        ``prob`` test (so 0 .. ``num_ops`` of them)."""
        ops = []
        for _ in range(self.num_ops):
            name = self.OPS[np.random.randint(len(self.OPS))]
            level = int(np.random.randint(self.num_levels))
            negative = bool(np.random.rand() < 0.5)
            if np.random.rand() < self.prob:
                ops.append((name, level, negative))
        return ops

    def apply_op(
        self, img: np.ndarray, name: str, level: int, negative: bool
    ) -> np.ndarray:
        """Apply one operation to ``img`` (H x W x 3 BGR or H x W, uint8),
        deterministically: the pixels of aug_lib's Pillow call with the
        parameter :meth:`parameter` gives, negated when ``negative`` (for
        Rotate, ShearX/Y and TranslateX/Y)."""
        value = self.parameter(name, level)
        if name in self._upstream:
            return self._upstream[name][level](dict(img=img))['img']
        sign = -1 if negative else 1
        fill = self.pad_val if img.ndim == 2 else (self.pad_val,) * 3
        if name in ('TranslateX', 'TranslateY'):
            # Pillow's affine data map output to input coordinates, mmcv's
            # offset moves the content: opposite signs
            return mmcv.imtranslate(
                img,
                -sign * value,
                direction='horizontal' if name == 'TranslateX' else 'vertical',
                border_value=self.pad_val,
                interpolation='nearest',
            )
        if name in ('Color', 'Brightness', 'Sharpness'):
            enhancer = getattr(ImageEnhance, name)
            return _with_pillow(img, lambda im: enhancer(im).enhance(value))
        if name == 'Rotate':
            return _with_pillow(
                img, lambda im: im.rotate(sign * value, fillcolor=fill)
            )
        if name in ('ShearX', 'ShearY'):
            s = sign * value
            coeffs = (
                (1, s, 0, 0, 1, 0) if name == 'ShearX' else (1, 0, 0, s, 1, 0)
            )
            return _with_pillow(
                img,
                lambda im: im.transform(
                    im.size, Image.AFFINE, coeffs, fillcolor=fill
                ),
            )
        return img  # Identity

    def transform(self, results: dict) -> dict:
        img = results['img']
        if img.dtype != np.uint8 or img.ndim not in (2, 3):
            raise ValueError(
                f'UniformAugment: results["img"] has dtype {img.dtype} and '
                f'shape {img.shape}; allowed: uint8, H x W x 3 or H x W'
            )
        for name, level, negative in self.random_ops():
            img = self.apply_op(img, name, level, negative)
        results['img'] = img
        return results

    def __repr__(self) -> str:
        return (
            f'{self.__class__.__name__}(num_ops={self.num_ops}, '
            f'prob={self.prob}, num_levels={self.num_levels}, '
            f'pad_val={self.pad_val}, ops={list(self.OPS)})'
        )
