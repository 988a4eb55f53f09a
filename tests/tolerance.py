"""Tolerances derived from floating-point rounding, for the tests.

A float32 operation rounds its exact result ``x`` to within ``U32 * |x|``
(``U32 = 2**-24``, the unit roundoff). A sum of ``n`` terms, in any order,
accumulates at most ``n - 1`` such roundings and ends within
``gamma(n - 1) * sum(|terms|)`` of the exact sum, with
``gamma(n) = n * u / (1 - n * u)`` (Higham, *Accuracy and Stability of
Numerical Algorithms*, 2nd ed., sections 3.1 and 4.2). Two computations of
the same quantity that each meet such a bound differ by at most twice it.

The magnitudes in these bounds are computed by the tests from the tensors
they compare, never hard-coded; and a test that uses a bound also shows
that the difference a real bug gives is far above it (``assert_far_below``).
"""

from typing import Tuple, Union

import torch

from mmst.deploy.rounding import U32, gamma  # noqa: F401 (re-exported)

Number = Union[float, torch.Tensor]


def sum_bound(n: int, abs_sum: Number, u: float = U32) -> Number:
    """Bound on the rounding error of a sum of ``n`` terms whose absolute
    values add up to ``abs_sum`` (a number, or a tensor of per-element
    sums), in any summation order."""
    return gamma(max(n - 1, 0), u) * abs_sum


def max_abs(*tensors: torch.Tensor) -> float:
    """The largest absolute value in ``tensors`` (float64)."""
    return max(float(t.detach().abs().double().max()) for t in tensors)


def assert_within(got: torch.Tensor, want: torch.Tensor, tol: Number) -> None:
    """``|got - want| <= tol`` element-wise (``tol`` a number or a tensor
    broadcastable to them), the differences taken in float64."""
    diff = (got.detach().double() - want.detach().double()).abs()
    tol = torch.as_tensor(tol, dtype=torch.float64)
    excess = diff - tol
    if bool((excess > 0).any()):
        i = int(excess.flatten().argmax())
        raise AssertionError(
            f'|difference| {float(diff.flatten()[i]):.3e} > tolerance '
            f'{float(tol.expand_as(diff).flatten()[i]):.3e} at flat index '
            f'{i} (max |difference| {float(diff.max()):.3e})'
        )


def assert_far_below(tol: float, bug: float, factor: float = 100.0) -> None:
    """A tolerance keeps its test able to fail: the difference ``bug`` that
    a real defect gives is at least ``factor`` times above it."""
    assert bug >= factor * tol, (
        f'a real defect changes the result by {bug:.3e}, not >= {factor:g} x '
        f'the tolerance {tol:.3e}: the test could not tell them apart'
    )


def clipped_update_bounds(
    max_norm: float, grad_norm: float, numel: int, param_norm: float
) -> Tuple[float, float]:
    """Bounds on ``||p_after - p_before||`` (float32, computed with
    ``Tensor.norm``) after one SGD step with lr 1 and no momentum on
    gradients clipped by ``torch.nn.utils.clip_grad_norm_``.

    Exact arithmetic gives ``c = T * min(1, max_norm / (T + 1e-6))`` for the
    gradients' norm ``T``; ``grad_norm`` is the norm the clipping measured
    (MMEngine logs it), ``numel`` the number of parameter elements,
    ``param_norm`` the norm of the parameters after the step. Rounding,
    relative to ``c``: the measured norm (squares summed per tensor, then
    the tensors' norms: ``gamma(numel + 4)``), the clip factor and the
    product (``gamma(3)``), the check's own norm (``gamma(numel + 2)``);
    absolute: ``p - g``, then ``- p``, round each element by ``u`` times
    ``|p - g|`` and ``|g|`` (``gamma(2) * (param_norm + max_norm)``).
    """
    clipped = grad_norm * min(1.0, max_norm / (grad_norm + 1e-6))
    step = gamma(2) * (param_norm + max_norm)
    up = (1 + gamma(numel + 4)) * (1 + gamma(3)) * (1 + gamma(numel + 2))
    down = (1 - gamma(numel + 4)) * (1 - gamma(3)) * (1 - gamma(numel + 2))
    return (clipped - step) * down, (clipped + step) * up
