"""Random smaller inputs for sub-networks ("SITrans" in ST++), task-free.

Sampling the size of a sub-network's input, and resizing a padded batch:
every image's valid (top-left, unpadded) region is resized and padded into
a new batch. What follows the new size in the ground truth belongs to the
task (:mod:`mmst.models.tasks`); :func:`rescale_batch` calls it back once
per data sample with the geometry of that sample's resize.
"""

import copy
import math
import random
from typing import (
    Any,
    Callable,
    Dict,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

import torch
import torch.nn.functional as F

from mmst.settings import invalid

Shape = Tuple[int, int]  # (h, w)


class InputSizeSampler:
    """Draws the shorter-side length of a sub-network's input.

    The size ``a`` is an integer drawn uniformly from
    ``[floor(lo), floor(hi)]``, where ``(lo, hi)`` is ``ratio_range`` times
    the shorter side of the batch (ST++: ``224 -> [96, 224]``) or
    ``size_range`` in pixels. The caller's scale is ``a / shorter_side``.

    Args:
        ratio_range (Sequence[float], optional): Range of the size relative
            to the input's shorter side. Defaults to ``(0.43, 1.0)``.
        size_range (Sequence[int], optional): Absolute range in pixels;
            replaces ``ratio_range`` when given.

    Raises:
        mmst.settings.SettingError: A range that is not ``(min, max)`` as
            allowed (a ValueError naming ``size_range`` / ``ratio_range``;
            ``mmst.StimulativeTraining`` puts ``input_resize.`` in front).
    """

    def __init__(
        self,
        ratio_range: Optional[Sequence[float]] = (0.43, 1.0),
        size_range: Optional[Sequence[int]] = None,
    ) -> None:
        if size_range is not None:
            if (
                not isinstance(size_range, (list, tuple))
                or len(size_range) != 2
                or not all(
                    isinstance(s, int) and not isinstance(s, bool) and s > 0
                    for s in size_range
                )
                or size_range[0] > size_range[1]
            ):
                raise invalid(
                    'size_range',
                    size_range,
                    'two positive integers (min, max), min <= max',
                )
            ratio_range = None
        elif ratio_range is not None:
            if (
                not isinstance(ratio_range, (list, tuple))
                or len(ratio_range) != 2
                or any(
                    isinstance(r, bool) or not isinstance(r, (int, float))
                    for r in ratio_range
                )
                or not 0 < ratio_range[0] <= ratio_range[1] <= 1
            ):
                raise invalid(
                    'ratio_range',
                    ratio_range,
                    'two numbers (lo, hi) with 0 < lo <= hi <= 1',
                )
        else:
            raise invalid(
                'ratio_range',
                None,
                'ratio_range=(lo, hi) or size_range=(min, max); both None '
                'leaves no size',
            )
        self.ratio_range = ratio_range
        self.size_range = size_range

    def smallest(self, shorter_side: int) -> int:
        """The smallest length :meth:`sample` can draw, in pixels."""
        if self.size_range is not None:
            return self.size_range[0]
        return max(math.floor(shorter_side * self.ratio_range[0]), 1)

    def sample(self, rng: random.Random, shorter_side: int) -> int:
        """A shorter-side length in pixels (>= 1)."""
        if self.size_range is not None:
            lo, hi = self.size_range
        else:
            lo = math.floor(shorter_side * self.ratio_range[0])
            hi = math.floor(shorter_side * self.ratio_range[1])
        return rng.randint(max(lo, 1), max(hi, 1))


def scaled(length: int, scale: float) -> int:
    """``round(length * scale)``, at least 1."""
    return max(1, int(round(length * scale)))


def round_up(length: int, divisor: int) -> int:
    """The smallest multiple of ``divisor`` that is >= ``length``."""
    return -(-length // divisor) * divisor


def check_scale(scale: float) -> float:
    """``scale`` as a float; ValueError unless finite and > 0."""
    scale = float(scale)
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(
            f'rescale: scale={scale!r} is invalid; allowed: a '
            'finite number > 0'
        )
    return scale


def valid_shape(
    meta_shape: Optional[Sequence[int]], inputs: torch.Tensor
) -> Shape:
    """The (h, w) of an image inside the padded batch ``inputs``: its
    metainfo shape ``meta_shape`` (h, w, ...) clipped to the batch, or the
    whole batch when None."""
    full_h, full_w = inputs.shape[-2:]
    if meta_shape is None:
        return int(full_h), int(full_w)
    h, w = (int(v) for v in tuple(meta_shape)[:2])
    return min(h, full_h), min(w, full_w)


def resize_padded_batch(
    inputs: torch.Tensor,
    valid_shapes: Sequence[Shape],
    scale: float,
    size_divisor: int = 1,
    pad_value: float = 0.0,
) -> Tuple[torch.Tensor, List[Shape], Shape]:
    """Resize every image's valid region and pad them into a new batch.

    Args:
        inputs (Tensor): Padded batch ``(B, C, H, W)``.
        valid_shapes (Sequence[tuple]): ``(h, w)`` of each image's valid
            (unpadded, top-left) region.
        scale (float): Resize factor of every image (bilinear,
            ``align_corners=False``, to ``round(h * scale)`` x
            ``round(w * scale)``).
        size_divisor (int): The new batch's height and width are multiples
            of it. Defaults to 1.
        pad_value (float): Value of the padded pixels. Defaults to 0.

    Returns:
        tuple: The new batch ``(B, C, H', W')``, the new ``(h, w)`` of every
        image and the new batch shape ``(H', W')``.
    """
    divisor = max(1, int(size_divisor or 1))
    new_shapes = [
        (scaled(h, scale), scaled(w, scale)) for h, w in valid_shapes
    ]
    batch_h = round_up(max(h for h, _ in new_shapes), divisor)
    batch_w = round_up(max(w for _, w in new_shapes), divisor)
    out = inputs.new_full(
        (inputs.shape[0], inputs.shape[1], batch_h, batch_w), pad_value
    )
    groups: Dict[Tuple[int, int, int, int], List[int]] = {}
    for i, ((h, w), (nh, nw)) in enumerate(zip(valid_shapes, new_shapes)):
        groups.setdefault((h, w, nh, nw), []).append(i)
    for (h, w, nh, nw), idx in groups.items():
        src = inputs[idx, :, :h, :w]
        if (nh, nw) != (h, w):
            resized = F.interpolate(
                src.float(),
                size=(nh, nw),
                mode='bilinear',
                align_corners=False,
            )
            src = resized.to(inputs.dtype)
        out[idx, :, :nh, :nw] = src
    return out, new_shapes, (batch_h, batch_w)


class Resized(NamedTuple):
    """How one image of a batch was resized.

    ``valid`` and ``new``: its (h, w) before and after; ``ratio``: the
    achieved per-axis ratios ``(r_h, r_w) = new / valid``; ``old_batch`` and
    ``batch``: the padded batch shape (H, W) before and after.
    """

    valid: Shape
    new: Shape
    ratio: Tuple[float, float]
    old_batch: Shape
    batch: Shape


def new_sample(sample: Any) -> Any:
    """An empty data sample of the same type with a copy of the metainfo
    of ``sample`` (an mmengine ``BaseDataElement``)."""
    out = type(sample)()
    out.set_metainfo(copy.deepcopy(sample.metainfo))
    return out


def rescale_batch(
    inputs: torch.Tensor,
    data_samples: Optional[List[Any]],
    scale: float,
    valid_shapes: Sequence[Shape],
    size_divisor: int,
    pad_value: float,
    rescale_sample: Callable[[Any, Resized], Any],
) -> Tuple[torch.Tensor, Optional[List[Any]]]:
    """Resize a padded batch (:func:`resize_padded_batch`) and have
    ``rescale_sample(sample, resized)`` make each image's new data sample.

    The caller's tensor and samples are left untouched. When nothing would
    change (every image keeps its size and the batch its shape) they are
    returned as they are.

    Args:
        inputs (Tensor): Padded batch ``(B, C, H, W)``.
        data_samples (list, optional): One data sample per image, or None.
        scale (float): Resize factor of every image (finite, > 0).
        valid_shapes (Sequence[tuple]): ``(h, w)`` of each image's valid
            region.
        size_divisor (int): The new batch's sides are multiples of it.
        pad_value (float): Value of the padded pixels.
        rescale_sample (Callable): ``(sample, Resized) -> new sample``.

    Returns:
        tuple: The new batch and data samples (None when given None).

    Raises:
        ValueError: ``scale`` is not finite and > 0.
    """
    scale = check_scale(scale)
    new_inputs, new_shapes, batch = resize_padded_batch(
        inputs, valid_shapes, scale, size_divisor, pad_value
    )
    if list(valid_shapes) == new_shapes and tuple(inputs.shape[-2:]) == batch:
        return inputs, data_samples
    if data_samples is None:
        return new_inputs, None
    old_batch = tuple(inputs.shape[-2:])
    new_samples = []
    for sample, valid, new in zip(data_samples, valid_shapes, new_shapes):
        ratio = (new[0] / valid[0], new[1] / valid[1])
        resized = Resized(valid, new, ratio, old_batch, batch)
        new_samples.append(rescale_sample(sample, resized))
    return new_inputs, new_samples
