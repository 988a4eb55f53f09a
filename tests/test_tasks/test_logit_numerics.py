"""Logit normalisation (teacher and students) and the KL run in float32
whatever the autocast dtype. In float16 the variance of logits of
magnitude ~1000 overflows (the teacher became uniform); near-constant
logits lose their spread in float16 / bfloat16 arithmetic."""

import pytest
import torch

from mmst.models.losses import KLDivergenceLoss, normalize_logits
from tests.test_core.common import batch, build, st_cfg
from tests.tolerance import (
    assert_far_below,
    assert_within,
    gamma,
    max_abs,
    sum_bound,
)

EPS = 1e-7


def layernorm64(z: torch.Tensor) -> torch.Tensor:
    """The normalisation in float64, of the same (half precision) values."""
    z = z.double()
    mean = z.mean(-1, keepdim=True)
    var = z.var(-1, keepdim=True, unbiased=False)
    return (z - mean) / torch.sqrt(var + EPS)


def layernorm_tolerance(z: torch.Tensor) -> torch.Tensor:
    """Per row, a bound on a float32 computation's error: the mean's
    rounding (<= gamma(C) max|z|, C values) divided by the standard
    deviation s, plus the relative roundings of the variance, the square
    root and the division (<= gamma(C + 4)) of |y|; counted twice."""
    c = z.shape[-1]
    z = z.double()
    s = torch.sqrt(z.var(-1, keepdim=True, unbiased=False) + EPS)
    y = layernorm64(z).abs().amax(-1, keepdim=True)
    return 2 * gamma(c + 4) * (z.abs().amax(-1, keepdim=True) / s + y)


def _logits(kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if kind == 'large-float16':  # variance ~4e5 > float16's 65504
        return (torch.randn(4, 10, generator=g) * 600).half()
    steps = torch.randint(0, 4, (4, 10), generator=g).double()
    if kind == 'near-constant-float16':  # 1 + k ulp
        return (1 + steps * 2**-10).half()
    return (1 + steps * 2**-7).bfloat16()  # near-constant-bfloat16


@pytest.mark.parametrize(
    'kind', ['large-float16', 'near-constant-float16', 'near-constant-bf16']
)
def test_normalisation_runs_in_float32_under_autocast(kind):
    z = _logits(kind)
    with torch.autocast('cpu', dtype=z.dtype):
        y = normalize_logits(z, 'layernorm')
        l2 = normalize_logits(z, 'l2')
    tol = layernorm_tolerance(z)
    assert_within(y, layernorm64(z), tol)
    assert y.dtype == torch.float32 and l2.dtype == torch.float32
    # the half precision computation is far off
    half = (z - z.mean(-1, keepdim=True)) / torch.sqrt(
        z.var(-1, keepdim=True, unbiased=False) + EPS
    )
    assert_far_below(float(tol.max()), max_abs(half.double() - layernorm64(z)))
    norm = z.double().norm(dim=-1, keepdim=True)
    assert_within(l2, z.double() / norm, 4 * gamma(12))


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_main_pass_teacher_in_float32_under_autocast(dtype):
    """Large logits (std ~1000) from the head under autocast: the teacher
    is their float32 normalisation, not a uniform (zero) one."""
    torch.manual_seed(0)
    model = build(st_cfg(logit_norm='layernorm')).train()
    arch = model.architecture
    with torch.no_grad():
        arch.head.fc.weight.mul_(3000.0)
    data = model.data_preprocessor(batch(n=4), True)
    inputs, samples = data['inputs'], data['data_samples']
    with torch.autocast('cpu', dtype=dtype), torch.no_grad():
        raw = arch.head(arch.extract_feat(inputs))
        losses, teacher = model.task.main_pass(arch, inputs, samples)
    assert raw.dtype == dtype and float(raw.double().std()) > 300
    tol = layernorm_tolerance(raw)
    assert_within(teacher, layernorm64(raw), tol)
    assert teacher.dtype == torch.float32
    assert_far_below(float(tol.max()), max_abs(layernorm64(raw)))
    assert all(torch.isfinite(v).all() for v in losses.values())


@pytest.mark.parametrize('kind', ['large-float16', 'near-constant-bf16'])
def test_kl_in_float32_under_autocast(kind):
    z = _logits(kind)
    student, teacher = z, z.flip(0)
    loss = KLDivergenceLoss(normalize='layernorm', normalize_teacher=True)
    with torch.autocast('cpu', dtype=z.dtype):
        value = loss(student, teacher)
    assert value.dtype == torch.float32
    s, t = layernorm64(student), layernorm64(teacher)
    p = torch.softmax(t, -1)
    terms = p * (torch.log_softmax(t, -1) - torch.log_softmax(s, -1))
    want = terms.sum() / z.shape[0]
    # the inputs' float32 error (tolerance above, times the largest
    # derivative of the KL in a logit, 2) and the sum's rounding
    tol = 2 * 2 * float(
        layernorm_tolerance(student).max() + layernorm_tolerance(teacher).max()
    ) + sum_bound(terms.numel() + 40, float(terms.abs().sum()) + 40)
    assert_within(value, want, tol)
