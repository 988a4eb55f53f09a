"""Rounding-error bounds for comparing two float32 runs of one network.

A float32 operation rounds its exact result ``x`` to within ``U32 * |x|``
(``U32 = 2**-24``, the unit roundoff). A sum of ``n`` terms, in any order,
accumulates at most ``n - 1`` roundings and ends within
``gamma(n - 1) * sum(|terms|)`` of the exact sum, with
``gamma(n) = n * u / (1 - n * u)`` (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., sections 3.1 and 4.2).

A network is a chain of such sums (convolutions, matrix products, pooling
and normalisation reductions) joined by element-wise functions.
:func:`accumulation_length` counts the terms those sums accumulate, and
:func:`network_rounding_bound` turns that count into a bound on how far
two float32 runs of the same network (PyTorch, ONNX Runtime; two CPUs'
kernels) may differ, relative to the outputs' magnitude.
"""

from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

U32 = 2.0**-24  # float32 unit roundoff


def gamma(n: int, u: float = U32) -> float:
    """``n * u / (1 - n * u)``: the relative error of ``n`` successive
    roundings (of a product of ``n`` factors, or of a sum's partial sums).

    Raises:
        ValueError: ``n < 0``, or ``n * u >= 1`` (the bound says nothing).
    """
    if n < 0:
        raise ValueError(f'n={n!r} is invalid; allowed: n >= 0')
    if n * u >= 1:
        raise ValueError(f'n={n} roundings of u={u} bound nothing')
    return n * u / (1 - n * u)


def _reduced(args, out) -> int:
    """Terms per output element of a reduction: input over output size."""
    return max(1, args[0].numel() // max(1, _first(out).numel()))


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def _conv(args, out) -> int:
    weight = args[1]  # (C_out, C_in / groups, *kernel)
    return weight[0].numel()


aten = torch.ops.aten
#: Terms each output element of an op accumulates (the ops that sum).
_LENGTHS: dict = {
    aten.convolution.default: _conv,
    aten.mm.default: lambda a, o: a[0].shape[-1],
    aten.addmm.default: lambda a, o: a[1].shape[-1] + 1,
    aten.bmm.default: lambda a, o: a[0].shape[-1],
    aten.baddbmm.default: lambda a, o: a[1].shape[-1] + 1,
    aten.mean.dim: _reduced,
    aten.sum.dim_IntList: _reduced,
    aten._adaptive_avg_pool2d.default: _reduced,
    aten.avg_pool2d.default: lambda a, o: int(torch.tensor(a[1]).prod()),
    aten._softmax.default: lambda a, o: a[0].shape[a[1]],
    aten.native_layer_norm.default: lambda a, o: int(
        torch.tensor(a[1]).prod()
    ),
    aten.native_group_norm.default: lambda a, o: a[0][0].numel() // a[6],
}


class _Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        length: Callable = _LENGTHS.get(func)
        if length is not None:
            self.total += int(length(args, out))
        return out


@torch.no_grad()
def accumulation_length(fn: Callable, *inputs) -> int:
    """The number of terms the summing ops of ``fn(*inputs)`` accumulate,
    added over every op called (convolutions: ``C_in / groups x kernel``;
    matrix products: the inner dimension; means, sums, pooling, softmax,
    layer and group norm: the elements reduced).

    An output depends on at most that many roundings along any path
    through the network (the count adds parallel branches too, so it
    over-counts, never under-counts, the longest path's). Batch size
    does not change it: one image suffices.

    Returns:
        int: The count (>= 0).
    """
    with _Count() as counter:
        fn(*inputs)
    return counter.total


def network_rounding_bound(length: int, magnitude: float) -> float:
    """Largest difference two float32 runs of one network may show in an
    output of magnitude ``magnitude`` (e.g. the largest ``|output|``).

    Each run's result is within ``gamma(length) * magnitude`` of the exact
    one: every summing op rounds its result by at most ``gamma(n)`` of the
    magnitude of what it adds up (Higham, 4.2), element-wise functions and
    normalisation keep relative errors of the order they receive, so the
    relative errors of the ops on a path add up to at most
    ``gamma(length)`` (``gamma(a) + gamma(b) <= gamma(a + b)``), measured
    against the output's magnitude. Two runs (each with its own kernels,
    summation orders, fused batch-norm folding) are within twice that of
    each other. This is a first-order bound: it assumes no op amplifies a
    relative error by much more than one (true of the normalised networks
    here, whose activations stay near unit scale), and it is the worst
    case: typical differences are one or two orders below it, while a
    real defect (another member, stale BN statistics, a dropped block)
    changes outputs by a fraction of ``magnitude`` itself.

    Args:
        length (int): :func:`accumulation_length` of the network.
        magnitude (float): The outputs' scale (>= 0).

    Returns:
        float: ``2 * gamma(length) * magnitude``.
    """
    return 2 * gamma(length) * float(magnitude)
