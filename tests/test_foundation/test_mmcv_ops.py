"""mmcv's compiled ops run on the CPU and agree with torchvision's."""

import pytest
import torch
import torchvision
from mmcv import ops as mmcv_ops

from tests.tolerance import assert_far_below, assert_within, gamma


def _rand_boxes(num: int, size: float = 64.0, seed: int = 0) -> torch.Tensor:
    """Random ``(x1, y1, x2, y2)`` boxes inside a ``size`` x ``size`` image.

    Args:
        num (int): Number of boxes.
        size (float): Image side length.
        seed (int): Seed of the generator.

    Returns:
        torch.Tensor: Boxes of shape ``(num, 4)``.
    """
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(num, 2, generator=gen) * size * 0.8
    wh = torch.rand(num, 2, generator=gen) * size * 0.4 + 1.0
    return torch.cat([xy, xy + wh], dim=1)


def _roi_align_rounding_bounds(
    feats, rois, grad_out, spatial_scale, sampling_ratio, aligned, size=7
):
    """How far two float32 builds of Detectron2's CPU RoIAlign (mmcv's and
    torchvision's: the same arithmetic, compiled separately, so a compiler
    may fuse ``a * b + c`` into one rounding in one and not the other) can
    differ: a bound on the outputs (a number) and on the input gradients
    for ``grad_out`` (a tensor like ``feats``).

    Each build is within the following of exact arithmetic (so the two
    within twice it):

    - a sample coordinate is about 12 roundings of numbers up to ``C`` (the
      largest box coordinate on the feature map, + 1) away from exact:
      ``delta = gamma(12) * C``; it moves each bilinear weight by at most
      ``2 * delta``, an output by ``4 * delta * max|feats|``, a gradient
      element by ``2 * delta`` times the ``|grad_out| / count`` of the
      samples touching it (``T``);
    - an output sums ``4 * count`` weighted values (``gamma(4 count + 4)``
      of ``max|feats|``); a gradient element sums its ``n`` terms
      ``grad_out * w / count`` (``gamma(n + 5)`` of their absolute sum,
      ``A``, the float64 backward of ``|grad_out|``).

    The bound holds where no coordinate is within ``delta`` of the kernels'
    jumps (a sample outside ``[-1, length]`` is dropped; the number of
    samples is ``ceil(extent / size)`` for ``sampling_ratio=0``): asserted.
    """
    num_images, _, height, width = feats.shape
    r = rois.detach().double()
    offset = 0.5 if aligned else 0.0
    largest = float(r[:, 1:].abs().max()) * spatial_scale + 1.0
    delta = gamma(12) * largest
    abs_grad = grad_out.detach().double().abs()
    touch = torch.zeros(feats.shape, dtype=torch.float64)  # T
    terms = torch.zeros(num_images, height, width, dtype=torch.float64)
    max_count = 1
    for n in range(len(r)):
        start = r[n, 1:3] * spatial_scale - offset  # (x, y)
        extent = r[n, 3:5] * spatial_scale - offset - start
        if not aligned:
            extent = extent.clamp(min=1.0)
        if sampling_ratio > 0:
            grid = [sampling_ratio, sampling_ratio]
        else:
            steps = extent / size
            assert ((steps - steps.round()).abs() * size > delta).all()
            grid = [int(g) for g in torch.ceil(steps)]
        count = max(grid[0] * grid[1], 1)
        max_count = max(max_count, count)
        near = []  # per axis: (bin, pixel) -> samples touching the pixel
        for axis, length in ((0, width), (1, height)):
            bins = torch.arange(size, dtype=torch.float64)[:, None]
            sub = torch.arange(grid[axis], dtype=torch.float64)[None, :]
            step = extent[axis] / size
            coord = start[axis] + bins * step + (sub + 0.5) * step / grid[axis]
            assert ((coord + 1).abs() > delta).all()
            assert ((coord - length).abs() > delta).all()
            inside = (coord >= -1) & (coord <= length)
            clamped = coord.clamp(0, length - 1)
            pixels = torch.arange(length, dtype=torch.float64)
            touching = (clamped[..., None] - pixels).abs() < 1 + delta
            near.append((touching & inside[..., None]).double().sum(1))
        near_x, near_y = near
        b = int(r[n, 0])
        touch[b] += torch.einsum(
            'cij,ip,jq->cpq', abs_grad[n] / count, near_y, near_x
        )
        terms[b] += torch.einsum('ip,jq->pq', near_y, near_x)

    feats64 = feats.detach().double().requires_grad_()
    out64 = torchvision.ops.roi_align(
        feats64, r, size, spatial_scale, sampling_ratio, aligned
    )
    (out64 * abs_grad).sum().backward()
    max_feat = float(feats.detach().abs().max())
    out_bound = 2 * (gamma(4 * max_count + 4) + 4 * delta) * max_feat
    grad_bound = 2 * (
        gamma(int(terms.max()) + 5) * feats64.grad + 2 * delta * touch
    )
    return out_bound, grad_bound


def test_ops_are_compiled():
    """The ops extension was built (not a pure-Python ``mmcv-lite``)."""
    from mmcv.utils import ext_loader

    ext = ext_loader.load_ext('_ext', ['nms', 'roi_align_forward'])
    assert callable(ext.nms)


@pytest.mark.parametrize('iou_thr', [0.3, 0.5, 0.7])
def test_nms_matches_torchvision(iou_thr):
    boxes = _rand_boxes(200)
    scores = torch.rand(200, generator=torch.Generator().manual_seed(1))

    dets, keep = mmcv_ops.nms(boxes, scores, iou_thr)

    expected = torchvision.ops.nms(boxes, scores, iou_thr)
    assert 0 < len(keep) < len(boxes)
    assert keep.tolist() == expected.tolist()
    assert dets.shape == (len(keep), 5)
    # copies of the inputs: exact
    torch.testing.assert_close(dets[:, :4], boxes[keep], rtol=0, atol=0)
    torch.testing.assert_close(dets[:, 4], scores[keep], rtol=0, atol=0)
    # scores come out sorted in descending order
    assert torch.all(dets[:-1, 4] >= dets[1:, 4])


def test_nms_suppresses_overlaps():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 11.0, 11.0],
            [20.0, 20.0, 30.0, 30.0],
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, keep = mmcv_ops.nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]


def test_batched_nms_matches_torchvision():
    boxes = _rand_boxes(300, seed=2)
    gen = torch.Generator().manual_seed(3)
    scores = torch.rand(300, generator=gen)
    labels = torch.randint(0, 5, (300,), generator=gen)
    nms_cfg = dict(type='nms', iou_threshold=0.5)

    dets, keep = mmcv_ops.batched_nms(boxes, scores, labels, nms_cfg)

    expected = torchvision.ops.batched_nms(boxes, scores, labels, 0.5)
    assert sorted(keep.tolist()) == sorted(expected.tolist())
    # overlapping boxes of different classes are not suppressed
    assert len(keep) > len(torchvision.ops.nms(boxes, scores, 0.5))
    # copies of the inputs: exact
    torch.testing.assert_close(dets[:, :4], boxes[keep], rtol=0, atol=0)
    torch.testing.assert_close(dets[:, 4], scores[keep], rtol=0, atol=0)


def test_batched_nms_class_agnostic():
    boxes = _rand_boxes(100, seed=4)
    scores = torch.rand(100, generator=torch.Generator().manual_seed(5))
    labels = torch.randint(0, 3, (100,))
    nms_cfg = dict(type='nms', iou_threshold=0.5)

    _, keep = mmcv_ops.batched_nms(
        boxes, scores, labels, nms_cfg, class_agnostic=True
    )

    expected = torchvision.ops.nms(boxes, scores, 0.5)
    assert keep.tolist() == expected.tolist()


@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('sampling_ratio', [0, 2])
def test_roi_align_matches_torchvision(aligned, sampling_ratio):
    gen = torch.Generator().manual_seed(6)
    feats = torch.randn(2, 8, 32, 40, generator=gen)
    spatial_scale = 0.5
    boxes = _rand_boxes(12, size=64.0, seed=7)
    batch_idx = torch.arange(12, dtype=torch.float32)[:, None] % 2
    rois = torch.cat([batch_idx, boxes], dim=1)

    feats_mm = feats.clone().requires_grad_()
    roi_align = mmcv_ops.RoIAlign(
        output_size=(7, 7),
        spatial_scale=spatial_scale,
        sampling_ratio=sampling_ratio,
        pool_mode='avg',
        aligned=aligned,
    )
    out = roi_align(feats_mm, rois)

    feats_tv = feats.clone().requires_grad_()
    expected = torchvision.ops.roi_align(
        feats_tv,
        rois,
        output_size=(7, 7),
        spatial_scale=spatial_scale,
        sampling_ratio=sampling_ratio,
        aligned=aligned,
    )

    assert out.shape == (12, 8, 7, 7)
    assert out.abs().sum() > 0
    weights = torch.randn(out.shape, generator=gen)
    # The same algorithm built twice: rounding-level bounds (see the helper).
    out_tol, grad_tol = _roi_align_rounding_bounds(
        feats, rois, weights, spatial_scale, sampling_ratio, aligned
    )
    assert_within(out, expected, out_tol)
    # ... far below the difference a half-pixel shift makes (``aligned``)
    roi_align_shifted = mmcv_ops.RoIAlign(
        output_size=(7, 7),
        spatial_scale=spatial_scale,
        sampling_ratio=sampling_ratio,
        pool_mode='avg',
        aligned=not aligned,
    )
    feats_bug = feats.clone().requires_grad_()
    shifted = roi_align_shifted(feats_bug, rois)
    assert_far_below(out_tol, float((shifted - expected).abs().max()))

    # the CPU backward kernel agrees too
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    assert_within(feats_mm.grad, feats_tv.grad, grad_tol)
    (shifted * weights).sum().backward()
    bug = float((feats_bug.grad - feats_tv.grad).abs().max())
    assert_far_below(float(grad_tol.max()), bug)
