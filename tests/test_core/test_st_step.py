"""The ST training step against an independent computation written from
docs/method.md, and its bookkeeping (N=0, accumulation, AMP, logs)."""

import copy

import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

from tests.tolerance import (
    assert_far_below,
    assert_within,
    clipped_update_bounds,
    max_abs,
    sum_bound,
)

from .common import RecordingOptimWrapper, batch, build, st_cfg


def layernorm(z):
    mean = z.mean(-1, keepdim=True)
    var = z.var(-1, keepdim=True, unbiased=False)
    return (z - mean) / torch.sqrt(var + 1e-7)


def manual_forward(arch, x, depths):
    """Stem, the first depths[i] blocks of each stage, neck, head."""
    bb = arch.backbone
    x = bb.relu(bb.norm1(bb.conv1(x)))
    for name, k in zip(bb.res_layers, depths):
        for block in list(getattr(bb, name))[:k]:
            x = block(x)
    feats = arch.neck((x,))
    return arch.head.fc(feats[-1])


def reference_gradients(
    arch,
    inputs,
    labels,
    passes,
    forward=manual_forward,
    full=(2, 2, 2),
    weight=1.0,
):
    """CE(norm(z), y) + weight * sum_i KL(softmax(t) || softmax(norm(s_i))),
    each sub-network on the input resized once from the original batch;
    ``forward(arch, x, depths)`` gives the logits of the network keeping
    the first ``depths[i]`` blocks of stage i (``full``: the main one).

    Returns the gradients of the total, and those of each pass's loss
    (None where a pass leaves a parameter unused)."""
    z = layernorm(forward(arch, inputs, list(full)))
    total = F.cross_entropy(z, labels)
    losses = [total]
    t = z.detach()
    for depths, size in passes:
        x = F.interpolate(
            inputs, size=(size, size), mode='bilinear', align_corners=False
        )
        s = layernorm(forward(arch, x, depths))
        losses.append(
            weight
            * F.kl_div(
                F.log_softmax(s, -1), F.softmax(t, -1), reduction='batchmean'
            )
        )
        total = total + losses[-1]
    params = [p for p in arch.parameters() if p.requires_grad]
    ids = list(map(id, params))
    grads = torch.autograd.grad(total, params, retain_graph=True)
    per_pass = [
        dict(
            zip(
                ids,
                torch.autograd.grad(
                    loss, params, retain_graph=True, allow_unused=True
                ),
            )
        )
        for loss in losses
    ]
    return dict(zip(ids, grads)), per_pass


def step_matches_method(
    model, data, forward=manual_forward, full=(2, 2, 2), size=28, weight=1.0
):
    """Run ``model.train_step(data)`` and check its summed gradients
    against :func:`reference_gradients` on a copy of the architecture
    taken before the step, for the sub-networks and sizes the step draws
    (``model.sample``, asked beforehand) at the sub-network loss
    ``weight`` (0: no sub-network pass). Returns ``(log_vars, passes)``.
    """
    reference = copy.deepcopy(model.architecture)
    optim = RecordingOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    passes = []
    for i in range(1, (model.num_subnets if weight else 0) + 1):
        subnet, sub_size = model.sample(i, size)
        passes.append(([len(s) for s in subnet], sub_size))
    log_vars = model.train_step(data, optim)

    pre = reference.data_preprocessor(data, True)
    labels = torch.stack([s.gt_label for s in pre['data_samples']]).view(-1)
    expected, per_pass = reference_gradients(
        reference, pre['inputs'], labels, passes, forward, full, weight
    )
    # The step runs each pass with the same kernels on the same shapes as
    # the reference, but adds the N + 1 pass gradients g_j in another order
    # than autograd does: each sum within gamma_N sum_j |g_j| of the exact.
    tols = []
    for p, q in zip(model.architecture.parameters(), reference.parameters()):
        terms = [g[id(q)] for g in per_pass if g[id(q)] is not None]
        if not terms:
            continue
        tol = 2 * sum_bound(len(terms), sum(g.double().abs() for g in terms))
        assert_within(optim.recorded[id(p)], expected[id(q)], tol)
        tols.append(float(tol.max()))
    # ... far below what a step that lost one sub-network pass would show
    last = [g for g in per_pass[-1].values() if g is not None]
    assert_far_below(max(tols), max_abs(*last))
    return log_vars, passes


@pytest.mark.parametrize('bn_stats', ['main', 'shared'])
def test_stpp_step_matches_method(bn_stats):
    torch.manual_seed(0)
    model = build(
        st_cfg(
            num_subnets=3,
            logit_norm='layernorm',
            bn_stats=bn_stats,
            input_resize=dict(ratio_range=(0.43, 1.0)),
            seed=7,
        )
    )
    model.train()
    log_vars, passes = step_matches_method(model, batch(n=6))
    assert (
        len({tuple(d) for d, _ in passes}) > 1
        or len({s for _, s in passes}) > 1
    ), 'draw something non-trivial'
    assert set(log_vars) >= {
        'loss',
        'loss_main',
        'loss_subnet',
        'subnet_size',
        'subnet_depth_s1',
    }

    # main: only the main pass moves the running statistics.
    tracked = int(model.architecture.backbone.norm1.num_batches_tracked)
    assert tracked == (1 if bn_stats == 'main' else 4)


@pytest.mark.parametrize('by_epoch', [False, True])
def test_subnet_schedule_starts_passes_and_weights_them(by_epoch):
    """``subnet_schedule=dict(begin=2, warmup=2)``: at iterations (or
    epochs) 0 and 1 the step is the main pass alone (one pass metered,
    the CE's gradients); from 2 on the N passes run, their KLs weighted
    1/3, 2/3, 1, 1 in the gradients (the reference of docs/method.md
    with the weight) and in the logged total."""
    from mmst.engine import FlopMeter

    torch.manual_seed(0)
    schedule = dict(begin=2, warmup=2, by_epoch=by_epoch)
    model = build(
        st_cfg(
            num_subnets=2,
            logit_norm='layernorm',
            input_resize=dict(ratio_range=(0.43, 1.0)),
            seed=7,
            subnet_schedule=schedule,
        )
    ).train()
    model.flop_meter = FlopMeter()
    # a hub of its own, its steps cleared at the end: later tests read
    # the latest hub's iteration
    hub = MessageHub.get_instance(f'test_subnet_schedule_{by_epoch}')
    key = 'epoch' if by_epoch else 'iter'
    weights, metered = [], []
    try:
        for step in range(6):
            hub.update_info(key, step)
            expected = [0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0][step]
            log_vars, passes = step_matches_method(
                model, batch(seed=step), weight=expected
            )
            weights.append(log_vars['subnet_weight'])
            metered.append(len(model.flop_meter.pop()))
            if expected:
                total = float(log_vars['loss_main']) + expected * 2 * float(
                    log_vars['loss_subnet']
                )
                assert float(log_vars['loss']) == pytest.approx(total)
            else:
                assert 'loss_subnet' not in log_vars
                assert log_vars['loss'] is log_vars['loss_main']
    finally:
        hub.update_info('iter', None)
        hub.update_info('epoch', None)
    assert weights == [0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0]
    assert metered == [1, 1, 3, 3, 3, 3]
    if by_epoch:  # outside a runner, no epoch: refused, not guessed
        with pytest.raises(RuntimeError, match='by_epoch=True counts'):
            model.train_step(
                batch(),
                OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1)),
            )


def test_n0_is_conventional_training():
    torch.manual_seed(0)
    model = build(st_cfg(num_subnets=0))
    plain = copy.deepcopy(model.architecture)
    data = batch()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    model.train_step(data, optim)
    plain_optim = OptimWrapper(torch.optim.SGD(plain.parameters(), lr=0.1))
    plain.train_step(data, plain_optim)
    # Exact: with N = 0 the step runs the architecture's own loss, one
    # backward and one SGD step, the same operations as its train_step.
    for a, b in zip(
        model.architecture.state_dict().values(), plain.state_dict().values()
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_accumulation_counts_iterations():
    """With accumulative_counts=2 the N + 1 backward passes of an ST
    iteration count once: parameters move every second iteration."""
    torch.manual_seed(0)
    model = build(st_cfg(num_subnets=2, seed=1))
    optim = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2
    )
    optim.initialize_count_status(model, 0, 4)
    before = copy.deepcopy(model.architecture.state_dict())
    model.train_step(batch(seed=1), optim)
    assert optim.inner_count == 1
    after_one = model.architecture.backbone.conv1.weight.detach().clone()
    torch.testing.assert_close(  # not stepped: unchanged, exactly
        after_one, before['backbone.conv1.weight'], rtol=0, atol=0
    )
    model.train_step(batch(seed=2), optim)
    assert optim.inner_count == 2
    assert not torch.equal(
        model.architecture.backbone.conv1.weight,
        before['backbone.conv1.weight'],
    )


def test_amp_step_is_finite_with_layernorm_kl():
    from mmengine.runner.amp import autocast

    torch.manual_seed(0)
    model = build(
        st_cfg(
            num_subnets=2,
            logit_norm='layernorm',
            input_resize=dict(ratio_range=(0.43, 1.0)),
        )
    )
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    # AmpOptimWrapper needs a GPU; on CPU run the same step under bf16
    # autocast (STACK.md).
    with autocast(device_type='cpu', dtype=torch.bfloat16):
        log_vars = model.train_step(batch(), optim)
    assert all(
        torch.isfinite(torch.as_tensor(v)).all() for v in log_vars.values()
    )
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_gradient_clipping_applies_to_the_summed_gradients():
    torch.manual_seed(0)
    model = build(st_cfg(num_subnets=2, seed=3))
    before = [p.detach().clone() for p in model.parameters()]
    optim = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=1.0),
        clip_grad=dict(max_norm=1e-3),
    )
    model.train_step(batch(), optim)
    update = torch.cat(
        [
            (p.detach() - b).flatten()
            for p, b in zip(model.parameters(), before)
        ]
    )
    # lr 1: the update is the clipped gradient of all N + 1 passes, of norm
    # 1e-3 up to float32 rounding (see clipped_update_bounds) ...
    grad_norm = (
        MessageHub.get_current_instance().get_scalar('train/grad_norm')
    ).current()
    param_norm = float(
        torch.cat([p.detach().flatten() for p in model.parameters()])
        .double()
        .norm()
    )
    _, upper = clipped_update_bounds(
        1e-3, grad_norm, update.numel(), param_norm
    )
    assert 0 < update.norm() <= upper
    # ... far below the excess of the unclipped gradient
    assert_far_below(upper - 1e-3, grad_norm - 1e-3)


def hand_flops(depths, side, images, width=8, classes=10):
    """FLOPs of one forward + backward of the tiny CIFAR ResNet (stem 3x3
    1 -> width, stages of width x 1, 2, 4 at strides 1, 2, 2, a linear
    head) keeping ``depths`` blocks per stage on ``side`` px inputs,
    counted as torch's formulas do: 2 FLOPs per multiply-add; convolutions
    and the linear layer only; the backward computes the gradients of the
    weights (as many FLOPs as the forward) and of the inputs (as many
    again) except the stem's, whose input needs none."""

    def conv(cin, cout, k, h):
        return 2 * images * cout * h * h * cin * k * k

    stem = conv(1, width, 3, side)
    rest, h, c = 0, side, width
    for stage, (depth, stride) in enumerate(zip(depths, (1, 2, 2))):
        cout = width * 2**stage
        h = (h + 2 - 3) // stride + 1
        rest += conv(c, cout, 3, h) + conv(cout, cout, 3, h)
        if stride != 1:
            rest += conv(c, cout, 1, h)  # the downsample
        rest += (depth - 1) * 2 * conv(cout, cout, 3, h)
        c = cout
    rest += 2 * images * c * classes  # the head
    return 2 * stem + 3 * rest


def test_flop_meter_counts_each_pass_as_computed_by_hand():
    """The cost numbers of mmst.engine.STCostHook: every pass of an ST step
    (main network, then sub-networks on smaller inputs) counted exactly."""
    from mmst.engine import FlopMeter
    from mmst.subnet import subnet_depths

    # the arithmetic itself: [1,1,1] on one 16 px image
    assert hand_flops((1, 1, 1), 16, 1) == 4597632
    model = build(
        st_cfg(
            num_subnets=3,
            input_resize=dict(ratio_range=(0.43, 1.0)),
            seed=0,
        )
    )
    model.flop_meter = FlopMeter()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    model.train_step(batch(n=4, size=28), optim)
    passes = model.flop_meter.pop()
    assert [p[0] is None for p in passes] == [True, False, False, False]
    assert passes[0][1] == 28 and any(p[1] < 28 for p in passes[1:])
    for subnet, side, flops in passes:
        depths = (2, 2, 2) if subnet is None else subnet_depths(subnet)
        assert flops == hand_flops(depths, side, 4), (depths, side)
    assert model.flop_meter.pop() == []
