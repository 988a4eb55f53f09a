"""Random smaller inputs for sub-networks ("SITrans" in ST++).

One rescaling function per task, registered by task name: it takes the
batch after the data preprocessor and a scale factor, and returns the
resized inputs together with data samples whose ground truth and metainfo
follow the new size. Adding a task means adding one function here (or in a
module that calls :func:`register_rescaler`).
"""

import math
import random
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

# fn(inputs, data_samples, scale, size_divisor, pad_value) -> (inputs, samples)
Rescaler = Callable[
    [torch.Tensor, Optional[List[Any]], float, int, float],
    Tuple[torch.Tensor, Optional[List[Any]]],
]
RESCALERS: Dict[str, Rescaler] = {}


def register_rescaler(task: str) -> Callable[[Rescaler], Rescaler]:
    """Register the rescaling function of ``task``."""

    def wrap(fn: Rescaler) -> Rescaler:
        RESCALERS[task] = fn
        return fn

    return wrap


def get_rescaler(task: str) -> Rescaler:
    if task not in RESCALERS:
        raise KeyError(
            f'no input rescaling registered for task={task!r}; '
            f'registered: {sorted(RESCALERS)}'
        )
    return RESCALERS[task]


class InputSizeSampler:
    """Draws the shorter-side length of a sub-network's input.

    The size ``a`` is an integer drawn uniformly from
    ``[floor(lo), floor(hi)]``, where ``(lo, hi)`` is ``ratio_range`` times
    the shorter side of the batch (ST++: ``224 -> [96, 224]``) or
    ``size_range`` in pixels. The returned scale is ``a / shorter_side``.

    Args:
        ratio_range (Sequence[float], optional): Range of the size relative
            to the input's shorter side. Defaults to ``(0.43, 1.0)``.
        size_range (Sequence[int], optional): Absolute range in pixels;
            replaces ``ratio_range`` when given.
    """

    def __init__(
        self,
        ratio_range: Optional[Sequence[float]] = (0.43, 1.0),
        size_range: Optional[Sequence[int]] = None,
    ) -> None:
        if size_range is not None:
            if (
                len(size_range) != 2
                or not all(isinstance(s, int) and s > 0 for s in size_range)
                or size_range[0] > size_range[1]
            ):
                raise ValueError(
                    f'input_resize.size_range={size_range!r} is invalid; '
                    'allowed: two positive integers (min, max), min <= max'
                )
            ratio_range = None
        elif ratio_range is not None:
            if (
                len(ratio_range) != 2
                or not 0 < ratio_range[0] <= ratio_range[1] <= 1
            ):
                raise ValueError(
                    f'input_resize.ratio_range={ratio_range!r} is invalid; '
                    'allowed: (lo, hi) with 0 < lo <= hi <= 1'
                )
        else:
            raise ValueError('input_resize needs ratio_range or size_range')
        self.ratio_range = ratio_range
        self.size_range = size_range

    def sample(self, rng: random.Random, shorter_side: int) -> int:
        if self.size_range is not None:
            lo, hi = self.size_range
        else:
            lo = math.floor(shorter_side * self.ratio_range[0])
            hi = math.floor(shorter_side * self.ratio_range[1])
        return rng.randint(max(lo, 1), max(hi, 1))


def _scaled(length: int, scale: float) -> int:
    return max(1, int(round(length * scale)))


@register_rescaler('classification')
def rescale_classification(
    inputs: torch.Tensor,
    data_samples: Optional[List[Any]],
    scale: float,
    size_divisor: int = 1,
    pad_value: float = 0.0,
) -> Tuple[torch.Tensor, Any]:
    """Resize a classification batch (bilinear, from the original batch);
    labels do not depend on the size."""
    h, w = inputs.shape[-2:]
    size = (_scaled(h, scale), _scaled(w, scale))
    if size == (h, w):
        return inputs, data_samples
    return F.interpolate(
        inputs, size=size, mode='bilinear', align_corners=False
    ), data_samples
