"""The ST++ step under MMEngine's AmpOptimWrapper, which needs a GPU.

Skipped on machines without CUDA (this project's CI); run with the
``device`` tool when a GPU is lent (docs/benchmarks.md, "GPU checks").
"""

import copy

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim import AmpOptimWrapper

from tests.tolerance import assert_far_below, clipped_update_bounds

from .common import (
    RecordingAmpOptimWrapper,
    RecordingOptimWrapper,
    batch,
    build,
    st_cfg,
)

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason='AmpOptimWrapper needs a GPU'
)


def stpp_model(**kwargs):
    torch.manual_seed(0)
    cfg = st_cfg(
        num_subnets=3,
        logit_norm='layernorm',
        input_resize=dict(ratio_range=(0.43, 1.0)),
        seed=5,
        **kwargs,
    )
    return build(cfg).cuda()


def test_amp_step_matches_fp32_step():
    amp_model = stpp_model()
    fp32_model = copy.deepcopy(amp_model)
    amp = RecordingAmpOptimWrapper(
        optimizer=torch.optim.SGD(amp_model.parameters(), lr=0.0),
        dtype='float16',
        loss_scale=512.0,
    )
    fp32 = RecordingOptimWrapper(
        torch.optim.SGD(fp32_model.parameters(), lr=0.0)
    )
    # Same seed and iteration: the same sampled sub-networks and sizes.
    log_amp = amp_model.train_step(batch(n=8), amp)
    log_fp32 = fp32_model.train_step(batch(n=8), fp32)

    assert all(
        torch.isfinite(torch.as_tensor(v).detach()).all()
        for v in log_amp.values()
    )
    for key in ('subnet_size', 'subnet_depth_s1', 'subnet_depth_s3'):
        assert log_amp[key] == log_fp32[key]
    loss_amp, loss_fp32 = (
        float(v['loss'].detach()) for v in (log_amp, log_fp32)
    )
    assert abs(loss_amp - loss_fp32) < 5e-2
    # parameters in the same order in both (deep copy)
    flat_amp = torch.cat([g.flatten() for g in amp.recorded.values()])
    flat_fp32 = torch.cat([g.flatten() for g in fp32.recorded.values()])
    cos = torch.nn.functional.cosine_similarity(flat_amp, flat_fp32, dim=0)
    assert cos > 0.99, f'AMP gradients differ from fp32 (cos {cos:.4f})'
    assert abs(flat_amp.norm() / flat_fp32.norm() - 1) < 0.05


def test_amp_clips_the_unscaled_summed_gradients():
    model = stpp_model()
    before = [p.detach().clone() for p in model.parameters()]
    optim = AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
        dtype='float16',
        loss_scale=512.0,  # static: a dynamic one may skip a step
        clip_grad=dict(max_norm=1e-3),
    )
    model.train_step(batch(n=8), optim)
    update = torch.cat(
        [
            (p.detach() - b).flatten()
            for p, b in zip(model.parameters(), before)
        ]
    )
    # lr 1: the update is the clipped gradient of all N + 1 passes (fp32
    # gradients, unscaled exactly by 1/512), of norm 1e-3 up to float32
    # rounding (see clipped_update_bounds); clipping before unscaling would
    # leave it 512 times smaller.
    grad_norm = (
        MessageHub.get_current_instance().get_scalar('train/grad_norm')
    ).current()
    param_norm = float(
        torch.cat([p.detach().flatten() for p in model.parameters()])
        .double()
        .norm()
    )
    lower, upper = clipped_update_bounds(
        1e-3, grad_norm, update.numel(), param_norm
    )
    assert lower <= update.norm() <= upper
    # the slack below 1e-3 is far less than what that defect would take off
    assert_far_below(1e-3 - lower, 1e-3 * (1 - 1 / 512))


def test_amp_accumulates_over_iterations():
    model = stpp_model()
    optim = AmpOptimWrapper(
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        dtype='float16',
        loss_scale=512.0,
        accumulative_counts=2,
    )
    optim.initialize_count_status(model, 0, 4)
    w0 = model.architecture.backbone.conv1.weight.detach().clone()
    model.train_step(batch(seed=1), optim)
    assert optim.inner_count == 1
    torch.testing.assert_close(  # not stepped: unchanged, exactly
        model.architecture.backbone.conv1.weight, w0, rtol=0, atol=0
    )
    model.train_step(batch(seed=2), optim)
    assert optim.inner_count == 2
    w2 = model.architecture.backbone.conv1.weight
    assert torch.isfinite(w2).all() and not torch.equal(w2, w0)
