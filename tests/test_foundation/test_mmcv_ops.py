"""mmcv's compiled ops run on the CPU and agree with torchvision's."""

import pytest
import torch
import torchvision
from mmcv import ops as mmcv_ops


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
    torch.testing.assert_close(dets[:, :4], boxes[keep])
    torch.testing.assert_close(dets[:, 4], scores[keep])
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
    torch.testing.assert_close(dets[:, :4], boxes[keep])
    torch.testing.assert_close(dets[:, 4], scores[keep])


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
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)

    # the CPU backward kernel agrees too
    weights = torch.randn(out.shape, generator=gen)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(
        feats_mm.grad, feats_tv.grad, rtol=1e-4, atol=1e-5
    )
