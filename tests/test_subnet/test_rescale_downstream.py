"""Property tests of the downstream rescalers (detection, segmentation,
pose): after resizing a preprocessed batch, the ground truth still describes
the objects drawn in the images, within one pixel.

Images hold up to three non-overlapping shapes, shape ``c`` drawn at 255 in
channel ``c`` only, so a shape's pixels in any (resized) input are the
pixels of channel ``c`` above the normalised mid-grey. Samples are built by
the libraries' own transforms and data preprocessors.
"""

import copy
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmst.models.tasks import PoseTask, get_rescaler
from tests.tolerance import U32, assert_far_below, assert_within, max_abs

MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
SCALES = [0.43, 0.7, 1.0]
DIVISOR = 32


def _thresholds():
    return [(127.5 - m) / s for m, s in zip(MEAN, STD)]


def _rect(x1, y1, x2, y2):
    return [float(v) for v in (x1, y1, x2, y1, x2, y2, x1, y2)]


def _ellipse(cx, cy, ax, ay, n=32):
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return (
        np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)
        .reshape(-1)
        .tolist()
    )


def _raster(polygon, h, w):
    from mmdet.structures.mask import PolygonMasks

    return PolygonMasks([[np.array(polygon)]], h, w).to_ndarray()[0]


def _object(inputs, i, c, shape):
    """Pixels of shape ``c`` in image ``i`` of a normalised batch."""
    h, w = shape
    return inputs[i, c, :h, :w] > _thresholds()[c]


def _dilate(mask):
    m = torch.as_tensor(np.asarray(mask)).float()[None, None]
    return F.max_pool2d(m, 3, stride=1, padding=1)[0, 0] > 0


def _covers(cover, obj):
    """Every pixel of ``obj`` lies within one pixel of ``cover``."""
    cover = torch.as_tensor(np.asarray(cover)).bool()
    obj = torch.as_tensor(np.asarray(obj)).bool()
    return bool(
        (obj & ~_dilate(cover)[: obj.shape[0], : obj.shape[1]]).sum() == 0
    )


def _check_box(box, obj):
    ys, xs = torch.nonzero(obj, as_tuple=True)
    assert len(xs) > 0, 'object vanished'
    x1, y1, x2, y2 = (float(v) for v in box)
    # the object lies inside the box (edge coordinates) and the box is tight
    assert x1 - 1 <= xs.min() and xs.max() + 1 <= x2 + 1
    assert y1 - 1 <= ys.min() and ys.max() + 1 <= y2 + 1
    assert xs.min() <= x1 + 1 and x2 - 1 <= xs.max() + 1
    assert ys.min() <= y1 + 1 and y2 - 1 <= ys.max() + 1


def _expected_shape(shape, scale):
    return tuple(max(1, int(round(v * scale))) for v in shape)


def _snapshot(samples):
    return [copy.deepcopy(s) for s in samples]


def _assert_same(samples, before):
    from mmdet.structures.mask import BitmapMasks, PolygonMasks

    for s, b in zip(samples, before):
        assert s.metainfo.keys() == b.metainfo.keys()
        for key in b.metainfo_keys():
            assert np.array_equal(
                np.asarray(s.metainfo[key]), np.asarray(b.metainfo[key])
            ), key
        for key, value in b.items():
            for field, ref in value.items():
                got = getattr(s, key).get(field)
                if isinstance(ref, BitmapMasks):
                    assert np.array_equal(got.masks, ref.masks)
                elif isinstance(ref, PolygonMasks):
                    for pg, pr in zip(got.masks, ref.masks):
                        assert all(
                            np.array_equal(a, c) for a, c in zip(pg, pr)
                        )
                elif isinstance(ref, torch.Tensor):
                    assert torch.equal(got, ref), (key, field)


# -------------------------------------------------------------- detection


DET_IMAGES = [
    # (h, w), objects: (polygon, label), the last object is ignored
    (
        (70, 100),
        [
            (_rect(8, 10, 40, 50), 0),
            (_ellipse(70, 30, 20, 14), 1),
            (_rect(55, 52, 95, 66), 2),
        ],
    ),
    (
        (96, 64),
        [
            (_ellipse(30, 25, 22, 15), 3),
            (_rect(5, 50, 30, 90), 4),
            (_ellipse(50, 75, 9, 16), 5),
        ],
    ),
]


def _det_batch(poly2mask=True, pad_mask=True, images=DET_IMAGES):
    pytest.importorskip('mmdet')
    from mmdet.datasets.transforms import (
        LoadAnnotations,
        LoadImageFromNDArray,
        PackDetInputs,
    )
    from mmdet.models.data_preprocessors import DetDataPreprocessor

    load_img = LoadImageFromNDArray()
    load_ann = LoadAnnotations(
        with_bbox=True, with_mask=True, poly2mask=poly2mask
    )
    pack = PackDetInputs()
    data = dict(inputs=[], data_samples=[])
    for (h, w), objects in images:
        img = np.zeros((h, w, 3), np.uint8)
        seg = np.zeros((h, w), np.uint8)
        instances = []
        for c, (polygon, label) in enumerate(objects):
            mask = _raster(polygon, h, w).astype(bool)
            img[mask, c] = 255
            seg[mask] = c + 1
            ys, xs = np.nonzero(mask)
            instances.append(
                dict(
                    bbox=[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1],
                    bbox_label=label,
                    mask=[polygon],
                    ignore_flag=int(c == 2),
                )
            )
        results = load_ann(load_img(dict(img=img, instances=instances)))
        results['gt_seg_map'] = seg
        results['scale_factor'] = (1.25, 0.8)  # as if resized before
        packed = pack(results)
        data['inputs'].append(packed['inputs'])
        data['data_samples'].append(packed['data_samples'])
    preprocessor = DetDataPreprocessor(
        mean=MEAN,
        std=STD,
        pad_size_divisor=DIVISOR,
        pad_mask=pad_mask,
        pad_seg=True,
        seg_pad_value=255,
    )
    out = preprocessor(data, training=True)
    return out['inputs'], out['data_samples']


def _check_det(inputs, samples, new_inputs, new_samples, scale, pad_mask=True):
    from mmdet.structures.mask import BitmapMasks

    batch = tuple(new_inputs.shape[-2:])
    assert batch[0] % DIVISOR == 0 and batch[1] % DIVISOR == 0
    assert new_inputs.shape[:2] == inputs.shape[:2]
    for i, (old, new) in enumerate(zip(samples, new_samples)):
        shape = _expected_shape(old.img_shape, scale)
        assert tuple(new.img_shape) == shape
        assert tuple(new.batch_input_shape) == batch
        assert tuple(new.pad_shape) == tuple(
            -(-v // DIVISOR) * DIVISOR for v in shape
        )
        assert tuple(new.ori_shape) == tuple(old.ori_shape)
        r_h, r_w = shape[0] / old.img_shape[0], shape[1] / old.img_shape[1]
        # exact: the same two float64 operations (a ratio of sizes, a product)
        np.testing.assert_array_equal(
            new.scale_factor,
            (old.scale_factor[0] * r_w, old.scale_factor[1] * r_h),
        )
        # padding carries pad_value (0)
        assert torch.all(new_inputs[i, :, shape[0] :, :] == 0)
        assert torch.all(new_inputs[i, :, :, shape[1] :] == 0)
        groups = [(new.gt_instances, [0, 1]), (new.ignored_instances, [2])]
        for inst, channels in groups:
            assert torch.equal(
                inst.labels,
                (
                    old.gt_instances
                    if channels[0] == 0
                    else old.ignored_instances
                ).labels,
            )
            for k, c in enumerate(channels):
                obj = _object(new_inputs, i, c, shape)
                _check_box(inst.bboxes[k], obj)
                masks = inst.masks
                if isinstance(masks, BitmapMasks):
                    # DetDataPreprocessor pads gt_instances' masks only
                    padded = pad_mask and channels[0] == 0
                    expect = batch if padded else shape
                    assert (masks.height, masks.width) == expect
                    assert masks.masks.shape[1:] == expect
                    mask = masks.masks[k]
                    assert mask[shape[0] :].sum() == 0
                    assert mask[:, shape[1] :].sum() == 0
                else:
                    mask = masks[[k]].to_ndarray()[0]
                mask = mask[: shape[0], : shape[1]]
                assert _covers(mask, obj) and _covers(obj, mask)
            assert inst.bboxes[:, 0::2].max() <= shape[1]
            assert inst.bboxes[:, 1::2].max() <= shape[0]
        sem = new.gt_sem_seg.sem_seg
        assert tuple(sem.shape[-2:]) == batch
        assert sem.dtype == old.gt_sem_seg.sem_seg.dtype
        assert torch.all(sem[:, shape[0] :, :] == 255)
        assert torch.all(sem[:, :, shape[1] :] == 255)
        for c in range(3):
            obj = _object(new_inputs, i, c, shape)
            label = sem[0, : shape[0], : shape[1]] == c + 1
            assert _covers(label, obj) and _covers(obj, label)


@pytest.mark.parametrize('scale', SCALES)
@pytest.mark.parametrize('poly2mask', [True, False])
def test_detection_rescale_properties(scale, poly2mask):
    inputs, samples = _det_batch(poly2mask=poly2mask)
    inputs_before, samples_before = inputs.clone(), _snapshot(samples)
    new_inputs, new_samples = get_rescaler('detection')(
        inputs, samples, scale, DIVISOR, 0.0
    )
    _check_det(inputs, samples, new_inputs, new_samples, scale)
    assert torch.equal(inputs, inputs_before)
    _assert_same(samples, samples_before)
    if scale == 1.0:  # nothing to do: the batch is returned as it is
        assert new_inputs is inputs and new_samples is samples
    else:
        assert all(n is not o for n, o in zip(new_samples, samples))


def test_detection_masks_not_padded_keep_image_shape():
    inputs, samples = _det_batch(pad_mask=False)
    new_inputs, new_samples = get_rescaler('detection')(
        inputs, samples, 0.6, DIVISOR, 0.0
    )
    _check_det(inputs, samples, new_inputs, new_samples, 0.6, pad_mask=False)


def test_detection_upscale_and_no_samples():
    inputs, samples = _det_batch()
    new_inputs, new_samples = get_rescaler('detection')(
        inputs, samples, 1.3, DIVISOR, 0.0
    )
    _check_det(inputs, samples, new_inputs, new_samples, 1.3)
    only, none = get_rescaler('detection')(inputs, None, 0.5, DIVISOR, 0.0)
    assert none is None and only.shape[-2:] == (64, 64)
    with pytest.raises(ValueError, match='scale'):
        get_rescaler('detection')(inputs, samples, 0.0, DIVISOR, 0.0)


def test_detection_image_without_objects():
    inputs, samples = _det_batch(images=[((50, 60), []), DET_IMAGES[0]])
    new_inputs, new_samples = get_rescaler('detection')(
        inputs, samples, 0.5, DIVISOR, 0.0
    )
    empty = new_samples[0]
    assert empty.gt_instances.bboxes.shape == (0, 4)
    assert empty.gt_instances.masks.masks.shape == (0,) + tuple(
        new_inputs.shape[-2:]
    )
    assert tuple(empty.img_shape) == (25, 30)
    assert len(new_samples[1].gt_instances) == 2


def test_detection_drops_instances_emptied_by_rescaling():
    """Boxes outside the image or starting at its border become empty after
    scaling and clipping: those instances leave every field (boxes,
    labels, masks) of ``gt_instances`` and ``ignored_instances``; a box
    straddling the border is clipped and kept with its label and mask."""
    from mmdet.structures.bbox import HorizontalBoxes

    inputs, samples = _det_batch()
    rescale = get_rescaler('detection')
    reference = rescale(inputs, samples, 0.5, DIVISOR, 0.0)[1][0]
    h, w = samples[0].img_shape
    gt, ignored = samples[0].gt_instances, samples[0].ignored_instances
    assert len(gt) == 2 and len(ignored) == 1
    gt.bboxes = HorizontalBoxes(
        torch.tensor([[w + 2, 5, w + 12, 20], [w - 6, 5, w + 6, 20]]).float()
    )  # outside right; straddling the right border
    ignored.bboxes = HorizontalBoxes(torch.tensor([[-8.0, 4, 0, 16]]))
    before = _snapshot(samples)
    new_inputs, new_samples = rescale(inputs, samples, 0.5, DIVISOR, 0.0)
    _assert_same(samples, before)
    new = new_samples[0]
    new_h, new_w = new.img_shape
    kept = new.gt_instances
    assert len(kept) == 1 and len(new.ignored_instances) == 0
    assert kept.labels.tolist() == [gt.labels[1].item()]
    r_w = new_w / w
    torch.testing.assert_close(  # exact: a product and a clip
        kept.bboxes.tensor,
        torch.tensor([[(w - 6) * r_w, 2.5, new_w, 10.0]]),
        rtol=0,
        atol=0,
    )
    assert np.array_equal(
        kept.masks.masks, reference.gt_instances.masks.masks[1:2]
    )
    empty = new.ignored_instances
    assert empty.bboxes.tensor.shape == (0, 4) and len(empty.labels) == 0
    # (the preprocessor pads gt_instances' masks only)
    assert empty.masks.masks.shape == (0, new_h, new_w)
    assert len(new_samples[1].gt_instances) == 2  # the other image: all


# ----------------------------------------------------------- segmentation


SEG_IMAGES = [
    (
        (64, 90),
        [_rect(4, 6, 30, 40), _ellipse(60, 30, 20, 16), _rect(35, 48, 85, 60)],
    ),
    (
        (80, 48),
        [
            _ellipse(24, 20, 18, 12),
            _rect(4, 40, 20, 76),
            _ellipse(36, 60, 8, 14),
        ],
    ),
]


def _seg_batch():
    pytest.importorskip('mmseg')
    from mmseg.datasets.transforms import PackSegInputs
    from mmseg.models.data_preprocessor import SegDataPreProcessor

    pack = PackSegInputs()
    data = dict(inputs=[], data_samples=[])
    for (h, w), polygons in SEG_IMAGES:
        img = np.zeros((h, w, 3), np.uint8)
        seg = np.zeros((h, w), np.uint8)
        for c, polygon in enumerate(polygons):
            mask = _raster(polygon, h, w).astype(bool)
            img[mask, c] = 255
            seg[mask] = c + 1
        packed = pack(
            dict(
                img=img,
                gt_seg_map=seg,
                img_shape=(h, w),
                ori_shape=(h, w),
                scale_factor=(1.0, 1.0),
            )
        )
        data['inputs'].append(packed['inputs'])
        data['data_samples'].append(packed['data_samples'])
    preprocessor = SegDataPreProcessor(
        mean=MEAN, std=STD, size_divisor=DIVISOR, pad_val=0, seg_pad_val=255
    )
    out = preprocessor(data, training=True)
    return out['inputs'], out['data_samples']


@pytest.mark.parametrize('scale', SCALES)
def test_segmentation_rescale_properties(scale):
    inputs, samples = _seg_batch()
    inputs_before = inputs.clone()
    before = [copy.deepcopy(s) for s in samples]
    new_inputs, new_samples = get_rescaler('segmentation')(
        inputs, samples, scale, DIVISOR, 0.0
    )
    batch = tuple(new_inputs.shape[-2:])
    assert batch[0] % DIVISOR == 0 and batch[1] % DIVISOR == 0
    for i, (old, new) in enumerate(zip(samples, new_samples)):
        shape = _expected_shape(old.img_shape, scale)
        assert tuple(new.img_shape) == shape
        assert tuple(new.pad_shape) == batch
        assert tuple(new.padding_size) == (
            0,
            batch[1] - shape[1],
            0,
            batch[0] - shape[0],
        )
        r_h, r_w = shape[0] / old.img_shape[0], shape[1] / old.img_shape[1]
        # exact: 1.0 times the same float64 ratio of sizes
        np.testing.assert_array_equal(new.scale_factor, (r_w, r_h))
        sem = new.gt_sem_seg.data
        assert tuple(sem.shape) == (1,) + batch
        assert torch.all(sem[:, shape[0] :] == 255)
        assert torch.all(sem[:, :, shape[1] :] == 255)
        for c in range(3):
            obj = _object(new_inputs, i, c, shape)
            assert obj.any()
            label = sem[0, : shape[0], : shape[1]] == c + 1
            assert _covers(label, obj) and _covers(obj, label)
    assert torch.equal(inputs, inputs_before)
    for s, b in zip(samples, before):
        assert torch.equal(s.gt_sem_seg.data, b.gt_sem_seg.data)
        assert s.metainfo.keys() == b.metainfo.keys()
        assert tuple(s.img_shape) == tuple(b.img_shape)
        assert tuple(s.pad_shape) == tuple(b.pad_shape)


# ------------------------------------------------------------------- pose


POSE_INPUT = (96, 128)  # (w, h)
POSE_HEATMAP = (24, 32)
POSE_IMAGES = [
    # original image (h, w), person box, shapes as (cx, cy, ax, ay)
    (
        (150, 120),
        [10, 12, 110, 140],
        [(40, 45, 16, 20), (80, 60, 14, 14), (58, 110, 24, 14)],
    ),
    (
        (120, 200),
        [60, 5, 150, 115],
        [(85, 30, 12, 12), (125, 45, 12, 16), (105, 90, 20, 10)],
    ),
]


def _pose_codec():
    return dict(
        type='MSRAHeatmap',
        input_size=POSE_INPUT,
        heatmap_size=POSE_HEATMAP,
        sigma=2,
    )


def _pose_batch(
    pack_transformed=True,
    codec=None,
    input_size=POSE_INPUT,
    images=POSE_IMAGES,
):
    pytest.importorskip('mmpose')
    from mmpose.datasets.transforms import (
        GenerateTarget,
        GetBBoxCenterScale,
        LoadImage,
        PackPoseInputs,
        TopdownAffine,
    )
    from mmpose.models.data_preprocessors import PoseDataPreprocessor

    pipeline = [
        LoadImage(),
        GetBBoxCenterScale(padding=1.0),
        TopdownAffine(input_size=input_size),
        GenerateTarget(encoder=codec or _pose_codec()),
        PackPoseInputs(pack_transformed=pack_transformed),
    ]
    data = dict(inputs=[], data_samples=[])
    for (h, w), box, shapes in images:
        img = np.zeros((h, w, 3), np.uint8)
        yy, xx = np.mgrid[:h, :w]
        for c, (cx, cy, ax, ay) in enumerate(shapes):
            inside = (((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2) <= 1
            img[inside, c] = 255
        results = dict(
            img=img,
            bbox=np.array([box], np.float32),
            bbox_score=np.ones(1, np.float32),
            keypoints=np.array([[s[:2] for s in shapes]], np.float32),
            keypoints_visible=np.ones((1, len(shapes)), np.float32),
            id=0,
            img_id=0,
            category_id=1,
        )
        for transform in pipeline:
            results = transform(results)
        data['inputs'].append(results['inputs'])
        data['data_samples'].append(results['data_samples'])
    preprocessor = PoseDataPreprocessor(mean=MEAN, std=STD)
    out = preprocessor(data, training=True)
    return out['inputs'], out['data_samples']


def _pose_peaks(heatmaps):
    """Integer argmax of every channel, as (x, y) heatmap pixels."""
    flat = heatmaps.flatten(1).argmax(dim=1)
    w = heatmaps.shape[-1]
    return torch.stack([flat % w, flat // w], dim=1)


def _on_object(obj, x, y, tol):
    """The object has a pixel within ``tol`` pixels of (x, y)."""
    h, w = obj.shape
    xi, yi = int(round(float(x))), int(round(float(y)))
    window = obj[
        max(yi - tol, 0) : min(yi + tol + 1, h),
        max(xi - tol, 0) : min(xi + tol + 1, w),
    ]
    return bool(window.any())


@pytest.mark.parametrize('scale', SCALES)
@pytest.mark.parametrize('mode', ['transformed', 'peaks', 'resample'])
def test_pose_rescale_properties(scale, mode):
    from mmpose.codecs import MSRAHeatmap

    inputs, samples = _pose_batch(pack_transformed=mode == 'transformed')
    inputs_before = inputs.clone()
    before = [copy.deepcopy(s) for s in samples]
    codec = (
        None
        if mode == 'resample'
        else MSRAHeatmap(
            **{k: v for k, v in _pose_codec().items() if k != 'type'}
        )
    )
    new_inputs, new_samples = get_rescaler('pose')(
        inputs, samples, scale, 1, 0.0, codec=codec
    )
    batch = tuple(new_inputs.shape[-2:])
    assert batch[0] % 32 == 0 and batch[1] % 32 == 0
    stride = POSE_INPUT[0] // POSE_HEATMAP[0]
    shape = _expected_shape(POSE_INPUT[::-1], scale)
    for i, (old, new) in enumerate(zip(samples, new_samples)):
        assert tuple(new.input_size) == shape[::-1]
        assert tuple(new.batch_input_shape) == batch
        assert tuple(new.img_shape) == tuple(old.img_shape)
        np.testing.assert_array_equal(new.input_center, old.input_center)
        heatmaps = new.gt_fields.heatmaps
        assert tuple(heatmaps.shape) == (
            3,
            batch[0] // stride,
            batch[1] // stride,
        )
        weights = new.gt_instance_labels.keypoint_weights
        assert weights.shape == (1, 3) and torch.all(weights == 1)
        np.testing.assert_array_equal(
            new.gt_instances.keypoints, old.gt_instances.keypoints
        )
        if mode == 'transformed':
            kpts = new.gt_instances.transformed_keypoints[0]
            for c in range(3):
                obj = _object(new_inputs, i, c, shape)
                assert _on_object(obj, *kpts[c], tol=1)
                # the keypoint stays at the object's centre of mass
                ys, xs = torch.nonzero(obj, as_tuple=True)
                assert abs(xs.float().mean() - kpts[c][0]) <= 1
                assert abs(ys.float().mean() - kpts[c][1]) <= 1
        peaks = _pose_peaks(heatmaps) * stride
        for c in range(3):
            obj = _object(new_inputs, i, c, shape)
            # heatmap quantisation: half a heatmap pixel, plus one pixel
            assert _on_object(obj, *peaks[c], tol=1)
            ys, xs = torch.nonzero(obj, as_tuple=True)
            assert abs(xs.float().mean() - peaks[c][0]) <= stride / 2 + 1.5
            assert abs(ys.float().mean() - peaks[c][1]) <= stride / 2 + 1.5
            if mode != 'resample':
                assert heatmaps[c].max() == 1  # the codec's own targets
    assert torch.equal(inputs, inputs_before)
    for s, b in zip(samples, before):
        assert torch.equal(s.gt_fields.heatmaps, b.gt_fields.heatmaps)
        assert torch.equal(
            s.gt_instance_labels.keypoint_weights,
            b.gt_instance_labels.keypoint_weights,
        )
        assert tuple(s.input_size) == tuple(b.input_size)
        if 'transformed_keypoints' in b.gt_instances:
            np.testing.assert_array_equal(
                s.gt_instances.transformed_keypoints,
                b.gt_instances.transformed_keypoints,
            )


def _peak_recovery_tolerance(old, new, sigma: float) -> float:
    """Bound on how far the unbiased (exact Gaussian) targets drawn from
    packed keypoints and from keypoints recovered from the old targets
    differ, for one sample: rounding only (float32 heatmaps, keypoints).

    - Peak fit (``heatmap_peaks``): log values of float32 Gaussians are off
      by <= 16u (exp and log within 4 ulp each, the argument's roundings);
      the parabola's offset ``(L- - L+) / 2D`` (``D = -1 / sigma^2``,
      ``|offset| <= 1/2``) moves by <= 3 sigma^2 times that, + 10u for its
      own float32 arithmetic: ``fit`` old heatmap pixels.
    - Keypoints: ``fit * old stride * r`` input pixels, + float32 rounding of
      both sides' keypoints and their division by the new stride (4u |kp|).
    - Targets: a Gaussian of peak 1 moves by <= e^-1/2 / sigma per pixel its
      centre moves along each axis; evaluating it rounds <= 10u, twice.
    """
    old_wh = np.asarray(old.input_size, np.float64)
    new_wh = np.asarray(new.input_size, np.float64)
    old_stride = old_wh / np.asarray(old.gt_fields.heatmaps.shape[:0:-1])
    new_stride = np.asarray(new.batch_input_shape[::-1], np.float64) / (
        np.asarray(new.gt_fields.heatmaps.shape[:0:-1])
    )
    ratio = new_wh / old_wh  # (r_w, r_h)
    largest_keypoint = max_abs(
        torch.as_tensor(np.asarray(new.gt_instances.transformed_keypoints))
    )
    fit = 3 * sigma**2 * 16 * U32 + 10 * U32
    centre = (fit * old_stride * ratio + 4 * U32 * largest_keypoint) / (
        new_stride
    )
    return float(np.exp(-0.5) / sigma * centre.sum() + 2 * 10 * U32)


def test_pose_peak_recovery_matches_packed_keypoints(monkeypatch):
    """Without packed input-space keypoints the codec path recovers them
    from the old targets and draws the same new targets."""
    from mmpose.codecs import MSRAHeatmap

    from mmst.models.tasks import pose as rescale_downstream

    codec = dict(_pose_codec(), unbiased=True)
    args = {k: v for k, v in codec.items() if k != 'type'}
    with_kpts = _pose_batch(True, codec=codec)
    without = _pose_batch(False, codec=codec)
    a = get_rescaler('pose')(
        *with_kpts, 0.55, 1, 0.0, codec=MSRAHeatmap(**args)
    )[1]
    b = get_rescaler('pose')(*without, 0.55, 1, 0.0, codec=codec)[1]
    tols = [
        _peak_recovery_tolerance(old, new, codec['sigma'])
        for old, new in zip(with_kpts[1], a)
    ]
    for sa, sb, tol in zip(a, b, tols):
        assert_within(sa.gt_fields.heatmaps, sb.gt_fields.heatmaps, tol)

    # A real defect is far above it: whole-pixel peaks (no sub-pixel fit).
    fit = rescale_downstream.heatmap_peaks

    def whole_pixel_peaks(heatmaps):
        peaks, values = fit(heatmaps)
        return np.round(peaks), values

    monkeypatch.setattr(rescale_downstream, 'heatmap_peaks', whole_pixel_peaks)
    c = get_rescaler('pose')(*without, 0.55, 1, 0.0, codec=codec)[1]
    for sa, sc, tol in zip(a, c, tols):
        bug = max_abs(sa.gt_fields.heatmaps - sc.gt_fields.heatmaps)
        assert_far_below(tol, bug)


# Keypoints near, on and just outside the crop x in [60, 150], y in [0, 120]
# (the box, widened to the input's aspect ratio); (180, 60) lies outside
# the old targets' reach (weight 0) but inside the padded smaller input's.
POSE_BORDER_IMAGES = [
    (
        (120, 200),
        [60, 5, 150, 115],
        [(147, 40, 6, 6), (150, 70, 6, 6), (156, 100, 6, 6)],
    ),
    (
        (120, 200),
        [60, 5, 150, 115],
        [(180, 60, 6, 6), (62, 117, 6, 6), (105, 123, 6, 6)],
    ),
]


def test_pose_targets_are_the_codecs_encoding_of_the_rescaled_keypoints():
    """With packed ``transformed_keypoints`` the new targets are exactly
    what the codec, set to the padded smaller input, encodes from the
    rescaled keypoints and ``keypoints_visible``, also near, on and outside
    the crop's border."""
    from mmpose.codecs import MSRAHeatmap

    args = {k: v for k, v in _pose_codec().items() if k != 'type'}
    inputs, samples = _pose_batch(True, images=POSE_BORDER_IMAGES)
    _, new_samples = get_rescaler('pose')(
        inputs, samples, 0.55, 1, 0.0, codec=MSRAHeatmap(**args)
    )
    # the case at stake: old targets clipped at the heatmap's border
    old_peaks = torch.cat([_pose_peaks(s.gt_fields.heatmaps) for s in samples])
    assert (old_peaks[:, 0] == POSE_HEATMAP[0] - 1).sum() >= 2
    assert samples[1].gt_instance_labels.keypoint_weights[0, 0] == 0
    for old, new in zip(samples, new_samples):
        (w0, h0), (w, h) = old.input_size, new.input_size
        keypoints = np.asarray(old.gt_instances.transformed_keypoints)
        keypoints = keypoints[..., :2].astype(np.float64)
        keypoints[..., 0] = (keypoints[..., 0] + 0.5) * (w / w0) - 0.5
        keypoints[..., 1] = (keypoints[..., 1] + 0.5) * (h / h0) - 0.5
        batch_h, batch_w = new.batch_input_shape
        stride = POSE_INPUT[0] // POSE_HEATMAP[0]
        own = MSRAHeatmap(
            **dict(
                args,
                input_size=(batch_w, batch_h),
                heatmap_size=(batch_w // stride, batch_h // stride),
            )
        ).encode(
            keypoints.astype(np.float32),
            np.asarray(old.gt_instances.keypoints_visible),
        )
        assert torch.equal(
            new.gt_fields.heatmaps, torch.from_numpy(own['heatmaps'])
        )
        assert torch.equal(
            new.gt_instance_labels.keypoint_weights,
            torch.from_numpy(own['keypoint_weights']),
        )
    assert new_samples[1].gt_instance_labels.keypoint_weights[0, 0] == 1


def test_pose_task_warns_once_when_targets_come_from_peaks():
    from types import SimpleNamespace

    from mmpose.codecs import MSRAHeatmap
    from mmpose.models.data_preprocessors import PoseDataPreprocessor

    args = {k: v for k, v in _pose_codec().items() if k != 'type'}
    arch = SimpleNamespace(
        data_preprocessor=PoseDataPreprocessor(mean=MEAN, std=STD),
        head=SimpleNamespace(decoder=MSRAHeatmap(**args)),
    )
    task = PoseTask(arch)
    packed, bare = _pose_batch(True), _pose_batch(False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        task.rescale(*packed, 0.55)
        assert not caught  # exact keypoints: nothing to say
        task.rescale(*bare, 0.55)
        task.rescale(*bare, 0.7)
    assert len(caught) == 1
    assert 'PackPoseInputs(pack_transformed=True)' in str(caught[0].message)


def test_heatmap_peaks_are_subpixel():
    from mmst.models.tasks.heatmaps import heatmap_peaks

    heatmaps = torch.zeros(2, 8, 8)
    heatmaps[0, 3, 5] = 1.0
    heatmaps[0, 3, 4] = heatmaps[0, 3, 6] = 0.5
    heatmaps[0, 2, 5] = 0.5
    heatmaps[0, 4, 5] = 0.25  # peak pulled up in y
    peaks, values = heatmap_peaks(heatmaps)
    assert peaks[0, 0] == 5 and 2.5 < peaks[0, 1] < 3
    assert values[1] == 0


# --------------------------------------------------------- model losses


def _build(scope, cfg):
    """Build a model of library ``scope`` (mmdet, mmseg, mmpose)."""
    import importlib

    from mmengine.registry import DefaultScope

    importlib.import_module(f'{scope}.utils').register_all_modules(
        init_default_scope=False
    )
    registry = importlib.import_module(f'{scope}.registry').MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg)
    model.train()
    return model


def _finite(losses):
    total = 0.0
    for name, value in losses.items():
        if 'loss' not in name:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            assert torch.isfinite(v).all(), name
            total = total + v.sum()
    return total


def _tiny_det(config):
    from mmengine.hub import get_config

    cfg = get_config(config).model
    cfg.backbone.depth = 18
    cfg.backbone.init_cfg = None
    cfg.neck.in_channels = [64, 128, 256, 512]
    return cfg


def test_mask_rcnn_loss_on_rescaled_batch():
    pytest.importorskip('mmdet')
    torch.manual_seed(0)
    cfg = _tiny_det('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    model = _build('mmdet', cfg)
    preprocessor = model.data_preprocessor
    for poly2mask in (True, False):  # BitmapMasks, PolygonMasks
        inputs, samples = get_rescaler('detection')(
            *_det_batch(poly2mask=poly2mask),
            0.7,
            preprocessor.pad_size_divisor,
            preprocessor.pad_value,
        )
        losses = model.loss(inputs, samples)
        assert {'loss_rpn_cls', 'loss_bbox', 'loss_mask'} <= set(losses)
        _finite(losses)


def test_panoptic_fpn_loss_on_rescaled_batch():
    pytest.importorskip('mmdet')
    torch.manual_seed(0)
    cfg = _tiny_det('mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py')
    model = _build('mmdet', cfg)
    inputs, samples = _det_batch()
    for s in samples:  # thing labels < 80, stuff 80..132, ignore 255
        sem = s.gt_sem_seg.sem_seg
        s.gt_sem_seg.sem_seg = torch.where(
            sem == 0,
            torch.full_like(sem, 90),
            torch.where(sem == 255, sem, sem - 1),
        )
    inputs, samples = get_rescaler('detection')(inputs, samples, 0.5, 32, 0.0)
    losses = model.loss(inputs, samples)
    assert 'loss_seg' in losses and 'loss_mask' in losses
    _finite(losses)


def test_semantic_fpn_loss_on_rescaled_batch():
    pytest.importorskip('mmseg')
    from mmengine.hub import get_config

    torch.manual_seed(0)
    cfg = get_config(
        'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'
    ).model
    cfg.pretrained = None
    cfg.backbone.depth = 18
    cfg.backbone.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.neck.in_channels = [64, 128, 256, 512]
    cfg.decode_head.norm_cfg = dict(type='BN', requires_grad=True)
    cfg.decode_head.num_classes = 4
    cfg.data_preprocessor = None
    model = _build('mmseg', cfg)
    inputs, samples = _seg_batch()
    inputs, samples = get_rescaler('segmentation')(
        inputs, samples, 0.6, 32, 0.0
    )
    losses = model.loss(inputs, samples)
    assert 'decode.loss_ce' in losses
    _finite(losses).backward()


def test_simplebaseline_loss_on_rescaled_batch():
    pytest.importorskip('mmpose')
    from mmengine.hub import get_config

    torch.manual_seed(0)
    cfg = get_config(
        'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
        'td-hm_res50_8xb64-210e_coco-256x192.py'
    ).model
    cfg.backbone.depth = 18
    cfg.backbone.init_cfg = None
    cfg.head.in_channels = 512
    cfg.head.out_channels = 3
    cfg.head.decoder = _pose_codec()
    model = _build('mmpose', cfg)
    inputs, samples = _pose_batch(pack_transformed=False)
    for scale in (0.43, 0.8):
        new_inputs, new_samples = get_rescaler('pose')(
            inputs, samples, scale, 1, 0.0, codec=model.head.decoder
        )
        losses = model.loss(new_inputs, new_samples)
        assert set(losses) == {'loss_kpt', 'acc_pose'}
        _finite(losses).backward()


@pytest.mark.parametrize(
    'codec, head',
    [
        (
            dict(type='RegressionLabel', input_size=(64, 64)),
            dict(type='RegressionHead', in_channels=64, num_joints=3),
        ),
        (
            dict(
                type='SimCCLabel',
                input_size=(64, 64),
                sigma=(4.9, 5.66),
                simcc_split_ratio=2.0,
            ),
            dict(
                type='SimCCHead',
                in_channels=64,
                out_channels=3,
                input_size=(64, 64),
                in_featuremap_size=(2, 2),
                simcc_split_ratio=2.0,
            ),
        ),
    ],
    ids=['regression', 'simcc'],
)
def test_pose_targets_that_cannot_be_rescaled_are_refused_at_build(
    codec, head
):
    """A pose model whose codec's targets the pose task cannot rescale
    (regression, SimCC labels) is refused when the ST model is built with
    ``input_resize``, naming the codec (it used to build and fail at the
    first step with NotImplementedError); without ``input_resize`` it
    builds, and heatmap codecs build with it."""
    pytest.importorskip('mmpose')
    from mmengine.registry import DefaultScope
    from mmpose.utils import register_all_modules

    import mmst  # noqa: F401
    from mmst.registry import MODELS

    register_all_modules(init_default_scope=False)
    architecture = dict(
        type='TopdownPoseEstimator',
        data_preprocessor=dict(
            type='PoseDataPreprocessor', mean=MEAN, std=STD
        ),
        backbone=dict(
            type='ResNet', depth=18, base_channels=8, stem_channels=8
        ),
        head=dict(head, decoder=codec),
    )
    resize = dict(ratio_range=(0.43, 1.0))
    with DefaultScope.overwrite_default_scope('mmpose'):
        with pytest.raises(ValueError) as error:
            MODELS.build(
                dict(
                    type='mmst.StimulativeTraining',
                    architecture=architecture,
                    input_resize=resize,
                )
            )
        MODELS.build(
            dict(type='mmst.StimulativeTraining', architecture=architecture)
        )
    message = str(error.value)
    assert message.startswith(f'input_resize={resize!r} ')
    assert codec['type'] in message
    assert 'allowed: input_resize=None' in message

    heatmap = PoseTask(codec=_pose_codec())
    heatmap.check_rescale(resize)  # heatmaps follow a resize
