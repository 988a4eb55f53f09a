"""Random smaller inputs for downstream tasks (detection, segmentation,
pose).

Each function takes the batch after the model's data preprocessor
(normalised, padded, stacked) and one scale for the whole batch, and
returns a NEW batch and NEW data samples:

* every image's valid region (``img_shape``; ``input_size`` for top-down
  pose) is cut out of the padded input, resized bilinearly
  (``align_corners=False``) to ``round(h * scale) x round(w * scale)`` and
  placed top-left into a new batch padded with ``pad_value`` to the largest
  new size rounded up to ``size_divisor``;
* everything that depends on the image size follows the achieved per-axis
  ratios ``r_h = new_h / h`` and ``r_w = new_w / w``: boxes, instance masks,
  semantic / panoptic maps, keypoints, heatmap targets and the metainfo the
  heads read.

The caller's tensors and data samples are never modified: the main network
reuses them. When nothing would change (scale 1 and the same padded shape)
the inputs and samples are returned as they are, like the classification
rescaler does.

The task libraries are imported inside the functions only, so importing this
module works with any subset of mmdet / mmseg / mmpose installed.
"""

import copy
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .rescale import _scaled, register_rescaler

Shape = Tuple[int, int]
Ratio = Tuple[float, float]  # (r_h, r_w)

# Masks are resized in chunks to bound the float copy's memory.
_MASK_CHUNK = 32


def _round_up(length: int, divisor: int) -> int:
    return -(-length // divisor) * divisor


def _check_scale(scale: float) -> float:
    scale = float(scale)
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(
            f'rescale: scale={scale!r} is invalid; allowed: a '
            'finite number > 0'
        )
    return scale


def _valid_shape(
    meta_shape: Optional[Sequence[int]], inputs: torch.Tensor
) -> Shape:
    """The (h, w) of the image inside the padded batch, clipped to it."""
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
        scale (float): Resize factor of every image.
        size_divisor (int): The new batch's height and width are multiples
            of it. Defaults to 1.
        pad_value (float): Value of the padded pixels. Defaults to 0.

    Returns:
        tuple: The new batch, the new ``(h, w)`` of every image and the new
        batch shape ``(H, W)``.
    """
    divisor = max(1, int(size_divisor or 1))
    new_shapes = [
        (_scaled(h, scale), _scaled(w, scale)) for h, w in valid_shapes
    ]
    batch_h = _round_up(max(h for h, _ in new_shapes), divisor)
    batch_w = _round_up(max(w for _, w in new_shapes), divisor)
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


def _is_identity(
    inputs: torch.Tensor,
    valid_shapes: Sequence[Shape],
    new_shapes: Sequence[Shape],
    batch_shape: Shape,
) -> bool:
    return list(valid_shapes) == list(new_shapes) and tuple(
        inputs.shape[-2:]
    ) == tuple(batch_shape)


def _resize_inputs(
    inputs: torch.Tensor,
    valid_shapes: List[Shape],
    scale: float,
    divisor: int,
    pad_value: float,
) -> Optional[Tuple[torch.Tensor, List[Shape], List[Ratio], Shape]]:
    """The resized batch, each image's new shape and achieved (h, w)
    ratio, and the batch shape; None when nothing would change."""
    new_inputs, new_shapes, batch_shape = resize_padded_batch(
        inputs, valid_shapes, scale, divisor, pad_value
    )
    if _is_identity(inputs, valid_shapes, new_shapes, batch_shape):
        return None
    ratios = [
        (new[0] / valid[0], new[1] / valid[1])
        for valid, new in zip(valid_shapes, new_shapes)
    ]
    return new_inputs, new_shapes, ratios, batch_shape


def _resize_label_map(
    value: torch.Tensor,
    valid: Shape,
    new: Shape,
    pad_to: Optional[Shape],
    pad_value: float,
) -> torch.Tensor:
    """Nearest-resize a ``(C, H, W)`` or ``(H, W)`` map's valid region and
    pad it (bottom / right) to ``pad_to``."""
    squeeze = value.dim() == 2
    value = value[None] if squeeze else value
    h, w = valid
    region = value[..., :h, :w]
    if tuple(region.shape[-2:]) != tuple(new):
        region = F.interpolate(
            region[None].float(), size=new, mode='nearest-exact'
        )[0].to(value.dtype)
    else:
        region = region.clone()
    if pad_to is not None:
        ph, pw = pad_to
        region = F.pad(
            region,
            (
                0,
                max(pw - region.shape[-1], 0),
                0,
                max(ph - region.shape[-2], 0),
            ),
            value=pad_value,
        )
    return region[0] if squeeze else region


def _resize_mask_array(
    masks: np.ndarray,
    valid: Shape,
    new: Shape,
    pad_to: Optional[Shape],
    pad_value: int,
) -> np.ndarray:
    """Resize binary masks ``(N, H, W)``: bilinear (like the image) and
    threshold at 0.5, then pad with ``pad_value``."""
    h, w = valid
    nh, nw = new
    out_h, out_w = pad_to if pad_to is not None else new
    out = np.full((masks.shape[0], out_h, out_w), pad_value, dtype=masks.dtype)
    for start in range(0, masks.shape[0], _MASK_CHUNK):
        chunk = torch.from_numpy(
            np.ascontiguousarray(masks[start : start + _MASK_CHUNK, :h, :w])
        )
        resized = (
            F.interpolate(
                chunk[None].float(),
                size=(nh, nw),
                mode='bilinear',
                align_corners=False,
            )[0]
            >= 0.5
        )
        out[start : start + _MASK_CHUNK, :nh, :nw] = resized.numpy()
    return out


def _rescale_masks(
    masks: Any,
    valid: Shape,
    new: Shape,
    ratio: Ratio,
    old_batch: Shape,
    new_batch: Shape,
    pad_mask: Optional[bool],
    mask_pad_value: int,
) -> Any:
    """Rescale instance masks (``BitmapMasks``, ``PolygonMasks`` or a
    ``(N, H, W)`` tensor) of one image.

    Masks the preprocessor padded to the batch shape (``pad_mask=True``;
    detected by their size when ``pad_mask`` is None) are padded to the new
    batch shape; others get the new image shape.
    """
    from mmdet.structures.mask import BitmapMasks, PolygonMasks

    r_h, r_w = ratio
    if isinstance(masks, torch.Tensor):
        size = tuple(masks.shape[-2:])
    else:
        size = (masks.height, masks.width)
    padded = (size == tuple(old_batch)) if pad_mask is None else pad_mask
    pad_to = tuple(new_batch) if padded else None
    out_h, out_w = pad_to if padded else new

    if isinstance(masks, PolygonMasks):
        polygons = []
        for instance in masks.masks:
            new_instance = []
            for poly in instance:
                poly = np.asarray(poly, dtype=np.float64).copy()
                poly[0::2] *= r_w
                poly[1::2] *= r_h
                new_instance.append(poly)
            polygons.append(new_instance)
        return PolygonMasks(polygons, out_h, out_w)
    if isinstance(masks, BitmapMasks):
        array = _resize_mask_array(
            masks.masks, valid, new, pad_to, mask_pad_value
        )
        return BitmapMasks(array, out_h, out_w)
    if isinstance(masks, torch.Tensor):
        array = _resize_mask_array(
            masks.detach().cpu().numpy(), valid, new, pad_to, mask_pad_value
        )
        return torch.from_numpy(array).to(masks.device)
    raise TypeError(
        f'rescale: instance masks of type {type(masks)} are not '
        'supported; allowed: BitmapMasks, PolygonMasks, Tensor'
    )


def _rescale_boxes(boxes: Any, ratio: Ratio, new: Shape) -> Any:
    """Scale ``(N, 4)`` xyxy boxes (Tensor or mmdet ``BaseBoxes``) by
    ``(r_w, r_h)`` and clip them to the new image."""
    r_h, r_w = ratio
    if isinstance(boxes, torch.Tensor):
        if boxes.shape[-1] != 4:
            raise ValueError(
                'rescale: only (N, 4) xyxy boxes are supported, '
                f'got shape {tuple(boxes.shape)}'
            )
        factor = boxes.new_tensor([r_w, r_h, r_w, r_h])
        out = boxes * factor
        out[..., 0::2] = out[..., 0::2].clamp(0, new[1])
        out[..., 1::2] = out[..., 1::2].clamp(0, new[0])
        return out
    out = copy.deepcopy(boxes)  # mmdet BaseBoxes
    out.rescale_((r_w, r_h))
    out.clip_(new)
    return out


def _rescale_instances(
    instances: Any,
    valid: Shape,
    new: Shape,
    ratio: Ratio,
    old_batch: Shape,
    new_batch: Shape,
    pad_mask: Optional[bool],
    mask_pad_value: int,
) -> Any:
    """A new ``InstanceData`` with rescaled ``bboxes`` and ``masks``; other
    fields are copied."""
    new_instances = type(instances)(metainfo=copy.deepcopy(instances.metainfo))
    for key, value in instances.items():
        if key == 'bboxes':
            value = _rescale_boxes(value, ratio, new)
        elif key == 'masks':
            value = _rescale_masks(
                value,
                valid,
                new,
                ratio,
                old_batch,
                new_batch,
                pad_mask,
                mask_pad_value,
            )
        else:
            value = copy.deepcopy(value)
        setattr(new_instances, key, value)
    return new_instances


def _rescale_pixel_data(
    pixel_data: Any,
    valid: Shape,
    new: Shape,
    old_batch: Shape,
    new_batch: Shape,
    pad_seg: Optional[bool],
    seg_pad_value: float,
) -> Any:
    """A new ``PixelData`` whose maps are nearest-resized; maps the
    preprocessor padded to the batch shape (detected by size when
    ``pad_seg`` is None) are padded to the new batch shape with
    ``seg_pad_value``."""
    new_data = type(pixel_data)(metainfo=copy.deepcopy(pixel_data.metainfo))
    for key, value in pixel_data.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
            as_numpy = True
        else:
            as_numpy = False
        padded = (
            tuple(value.shape[-2:]) == tuple(old_batch)
            if pad_seg is None
            else pad_seg
        )
        value = _resize_label_map(
            value, valid, new, new_batch if padded else None, seg_pad_value
        )
        setattr(new_data, key, value.numpy() if as_numpy else value)
    return new_data


def _new_sample(sample: Any) -> Any:
    new = type(sample)()
    new.set_metainfo(copy.deepcopy(sample.metainfo))
    return new


def _rescaled_meta(sample: Any, ratio: Ratio) -> dict:
    """``scale_factor`` and ``homography_matrix`` after an extra resize by
    ``(r_h, r_w)`` (mmdet / mmcv convention: ``scale_factor`` is
    ``(w_scale, h_scale)`` from the original image to ``img_shape``)."""
    r_h, r_w = ratio
    meta = {}
    if 'scale_factor' in sample:
        sf = sample.scale_factor
        if np.isscalar(sf):
            sf = (sf, sf)
        meta['scale_factor'] = (float(sf[0]) * r_w, float(sf[1]) * r_h)
    if 'homography_matrix' in sample and sample.homography_matrix is not None:
        matrix = np.asarray(sample.homography_matrix)
        scaling = np.diag([r_w, r_h, 1.0]).astype(matrix.dtype)
        meta['homography_matrix'] = scaling @ matrix
    return meta


def _rescale_dense(
    inputs: torch.Tensor,
    data_samples: Optional[List[Any]],
    scale: float,
    size_divisor: int,
    pad_value: float,
    batch_pad_shape: bool,
    mask_pad_value: int,
    seg_pad_value: float,
    pad_mask: Optional[bool],
    pad_seg: Optional[bool],
) -> Tuple[torch.Tensor, Any]:
    """Shared body of the detection and segmentation rescalers."""
    scale = _check_scale(scale)
    divisor = max(1, int(size_divisor or 1))
    if data_samples is None:
        valid_shapes = [_valid_shape(None, inputs)] * inputs.shape[0]
    else:
        valid_shapes = [
            _valid_shape(s.metainfo.get('img_shape'), inputs)
            for s in data_samples
        ]
    resized = _resize_inputs(inputs, valid_shapes, scale, divisor, pad_value)
    if resized is None:
        return inputs, data_samples
    new_inputs, new_shapes, ratios, batch_shape = resized
    if data_samples is None:
        return new_inputs, None

    new_samples = []
    for sample, valid, new, ratio in zip(
        data_samples, valid_shapes, new_shapes, ratios
    ):
        old_batch = tuple(
            sample.metainfo.get('batch_input_shape', inputs.shape[-2:])
        )
        new_sample = _new_sample(sample)
        for key, value in sample.items():
            if _is_instance_data(value):
                value = _rescale_instances(
                    value,
                    valid,
                    new,
                    ratio,
                    old_batch,
                    batch_shape,
                    pad_mask,
                    mask_pad_value,
                )
            elif _is_pixel_data(value):
                value = _rescale_pixel_data(
                    value,
                    valid,
                    new,
                    old_batch,
                    batch_shape,
                    pad_seg,
                    seg_pad_value,
                )
            else:
                value = copy.deepcopy(value)
            setattr(new_sample, key, value)
        meta = _rescaled_meta(sample, ratio)
        meta['img_shape'] = tuple(new)
        if batch_pad_shape:  # mmseg: the padded map's shape
            meta['pad_shape'] = tuple(batch_shape)
        else:  # mmdet: the image rounded up to the size divisor
            meta['pad_shape'] = (
                _round_up(new[0], divisor),
                _round_up(new[1], divisor),
            )
        if 'batch_input_shape' in sample or not batch_pad_shape:
            meta['batch_input_shape'] = tuple(batch_shape)
        if 'padding_size' in sample:
            meta['padding_size'] = (
                0,
                batch_shape[1] - new[1],
                0,
                batch_shape[0] - new[0],
            )
        new_sample.set_metainfo(meta)
        new_samples.append(new_sample)
    return new_inputs, new_samples


def _is_instance_data(value: Any) -> bool:
    from mmengine.structures import InstanceData

    return isinstance(value, InstanceData)


def _is_pixel_data(value: Any) -> bool:
    from mmengine.structures import PixelData

    return isinstance(value, PixelData)


@register_rescaler('detection')
def rescale_detection(
    inputs: torch.Tensor,
    data_samples: Optional[List[Any]],
    scale: float,
    size_divisor: int = 1,
    pad_value: float = 0.0,
    *,
    mask_pad_value: int = 0,
    seg_pad_value: float = 255,
    pad_mask: Optional[bool] = None,
    pad_seg: Optional[bool] = None,
) -> Tuple[torch.Tensor, Optional[List[Any]]]:
    """Resize an mmdet batch and its ground truth.

    Handles every ``InstanceData`` field of the samples (``gt_instances``,
    ``ignored_instances``, ``proposals``...): ``bboxes`` (Tensor or
    ``BaseBoxes``, scaled by ``(r_w, r_h)`` and clipped to the new
    ``img_shape``) and ``masks`` (``BitmapMasks``: bilinear + threshold 0.5
    like the image; ``PolygonMasks``: coordinates scaled); and every
    ``PixelData`` field (``gt_sem_seg`` of panoptic models,
    ``gt_panoptic_seg``): nearest. Other fields (labels...) are copied.
    Metainfo: ``img_shape``, ``pad_shape`` (the new image rounded up to
    ``size_divisor``, as ``DetDataPreprocessor`` does), ``batch_input_shape``,
    ``scale_factor`` (multiplied by the achieved ``(r_w, r_h)``) and
    ``homography_matrix``; ``ori_shape`` is unchanged.

    Args:
        inputs (Tensor): The preprocessed batch ``(B, C, H, W)``.
        data_samples (list[DetDataSample], optional): Its data samples.
        scale (float): Resize factor of every image of the batch.
        size_divisor (int): The new batch's sides are multiples of it (the
            preprocessor's ``pad_size_divisor``). Defaults to 1.
        pad_value (float): Value of padded pixels (the preprocessor's
            ``pad_value``). Defaults to 0.
        mask_pad_value (int): Value of padded mask pixels (the
            preprocessor's ``mask_pad_value``). Defaults to 0.
        seg_pad_value (float): Value of padded semantic-map pixels (the
            preprocessor's ``seg_pad_value``). Defaults to 255.
        pad_mask (bool, optional): Whether the instance masks are padded to
            the batch shape (``pad_mask=True`` of the preprocessor). None:
            masks whose size equals the old ``batch_input_shape`` are padded
            to the new one, the others get the new ``img_shape``.
        pad_seg (bool, optional): The same for semantic maps
            (``pad_seg``).

    Returns:
        tuple: The new batch and new data samples (the caller's are left
        untouched).
    """
    return _rescale_dense(
        inputs,
        data_samples,
        scale,
        size_divisor,
        pad_value,
        False,
        mask_pad_value,
        seg_pad_value,
        pad_mask,
        pad_seg,
    )


@register_rescaler('segmentation')
def rescale_segmentation(
    inputs: torch.Tensor,
    data_samples: Optional[List[Any]],
    scale: float,
    size_divisor: int = 1,
    pad_value: float = 0.0,
    *,
    seg_pad_value: float = 255,
) -> Tuple[torch.Tensor, Optional[List[Any]]]:
    """Resize an mmseg batch and its ground truth.

    Every ``PixelData`` field (``gt_sem_seg``, ``gt_edge_map``,
    ``gt_depth_map``) is resized with nearest neighbour and padded to the new
    batch shape with ``seg_pad_value`` (mmseg's ``SegDataPreProcessor``
    pads them with ``seg_pad_val``, the loss's ignore index). Metainfo, in
    mmseg's convention: ``img_shape`` (the new image), ``pad_shape`` (the new
    batch shape), ``padding_size``, ``scale_factor`` (multiplied by the
    achieved ``(r_w, r_h)``).

    Args:
        inputs (Tensor): The preprocessed batch ``(B, C, H, W)``.
        data_samples (list[SegDataSample], optional): Its data samples.
        scale (float): Resize factor of every image of the batch.
        size_divisor (int): The new batch's sides are multiples of it.
            Defaults to 1.
        pad_value (float): Value of padded pixels (the preprocessor's
            ``pad_val``). Defaults to 0.
        seg_pad_value (float): Value of padded label pixels (the
            preprocessor's ``seg_pad_val``). Defaults to 255.

    Returns:
        tuple: The new batch and new data samples (the caller's are left
        untouched).
    """
    return _rescale_dense(
        inputs,
        data_samples,
        scale,
        size_divisor,
        pad_value,
        True,
        0,
        seg_pad_value,
        None,
        None,
    )


# ----------------------------------------------------------------- pose ---


def _build_codec(codec: Union[dict, Any]) -> Any:
    if isinstance(codec, dict):
        from mmpose.registry import KEYPOINT_CODECS

        return KEYPOINT_CODECS.build(copy.deepcopy(codec))
    return codec


def _resized_codec(codec: Any, input_size: Shape, heatmap_size: Shape) -> Any:
    """A new codec of the same type and settings with other
    ``input_size`` / ``heatmap_size`` (both ``(w, h)``)."""
    import inspect

    params = inspect.signature(type(codec).__init__).parameters
    kwargs = {}
    for name, param in params.items():
        if name == 'self' or param.kind in (
            param.VAR_POSITIONAL,
            param.VAR_KEYWORD,
        ):
            continue
        if name == 'input_size':
            kwargs[name] = tuple(input_size)
        elif name == 'heatmap_size':
            kwargs[name] = tuple(heatmap_size)
        elif hasattr(codec, name):
            kwargs[name] = copy.deepcopy(getattr(codec, name))
        elif param.default is param.empty:
            raise ValueError(
                f'rescale: cannot rebuild codec {type(codec).__name__} for a '
                f'new input size: its argument {name!r} is not stored on '
                'the codec; pass the codec config dict instead'
            )
    return type(codec)(**kwargs)


def heatmap_peaks(heatmaps: torch.Tensor) -> Tuple[np.ndarray, np.ndarray]:
    """Sub-pixel peak of every channel of Gaussian heatmaps.

    The argmax is refined per axis by fitting a parabola to the logarithm of
    the peak and its two neighbours, which is exact for a sampled Gaussian
    (a Gaussian centred on a pixel, as MSRAHeatmap draws it, gets no
    offset).

    Args:
        heatmaps (Tensor): ``(K, H, W)``.

    Returns:
        tuple: Peaks ``(K, 2)`` as (x, y) in heatmap pixels, and the peak
        values ``(K,)``.
    """
    hm = heatmaps.detach().float().cpu().numpy()
    num, height, width = hm.shape
    flat = hm.reshape(num, -1)
    index = flat.argmax(axis=1)
    values = flat[np.arange(num), index]
    peaks = np.stack([index % width, index // width], axis=1).astype(
        np.float64
    )
    for k in range(num):
        if values[k] <= 0:
            continue
        x, y = int(peaks[k, 0]), int(peaks[k, 1])
        for axis, (pos, size) in enumerate(((x, width), (y, height))):
            if not 0 < pos < size - 1:
                continue
            if axis == 0:
                left, right = hm[k, y, x - 1], hm[k, y, x + 1]
            else:
                left, right = hm[k, y - 1, x], hm[k, y + 1, x]
            if left <= 0 or right <= 0:
                continue
            log_l, log_c, log_r = np.log([left, values[k], right])
            denom = log_l - 2 * log_c + log_r
            if denom < 0:
                offset = 0.5 * (log_l - log_r) / denom
                peaks[k, axis] += float(np.clip(offset, -0.5, 0.5))
    return peaks, values


def _resample_heatmaps(
    heatmaps: torch.Tensor,
    stride: Tuple[float, float],
    ratio: Ratio,
    out_size: Shape,
) -> torch.Tensor:
    """Resample ``(K, h, w)`` heatmaps onto the heatmap grid of the resized
    input (``out_size`` = (H', W'), zeros outside the old heatmap).

    Heatmap pixel ``j`` sits at input pixel ``j * stride`` (mmpose's
    heatmap convention); input pixels follow the bilinear resize
    (``x' = (x + 0.5) * r - 0.5``).
    """
    (s_h, s_w), (r_h, r_w) = stride, ratio
    num, height, width = heatmaps.shape
    out_h, out_w = out_size

    def grid_axis(n_out: int, s: float, r: float, n_in: int) -> torch.Tensor:
        j = torch.arange(n_out, dtype=torch.float32)
        old = ((j * s + 0.5) / r - 0.5) / s  # old heatmap pixel
        return old * 2 / max(n_in - 1, 1) - 1  # align_corners=True

    gy = grid_axis(out_h, s_h, r_h, height)
    gx = grid_axis(out_w, s_w, r_w, width)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing='xy'), dim=-1)
    grid = grid.to(heatmaps.device)[None]
    out = F.grid_sample(
        heatmaps[None].float(),
        grid,
        mode='bilinear',
        padding_mode='zeros',
        align_corners=True,
    )[0]
    return out.to(heatmaps.dtype)


def _rescale_pose_targets(
    sample: Any,
    new_sample: Any,
    input_wh: Tuple[int, int],
    ratio: Ratio,
    batch_shape: Shape,
    codec: Optional[Any],
) -> None:
    """Regenerate ``gt_fields.heatmaps`` and
    ``gt_instance_labels.keypoint_weights`` for the resized input."""
    fields = sample.get('gt_fields')
    labels = sample.get('gt_instance_labels')
    unsupported = set() if fields is None else set(fields.keys())
    unsupported.discard('heatmaps')
    if labels is not None:
        unsupported |= set(labels.keys()) & {
            'keypoint_x_labels',
            'keypoint_y_labels',
            'keypoint_labels',
        }
    if unsupported:
        raise NotImplementedError(
            f'rescale: pose targets {sorted(unsupported)} cannot be rescaled;'
            ' supported: top-down heatmaps (gt_fields.heatmaps and '
            'gt_instance_labels.keypoint_weights)'
        )
    if fields is None:
        return
    if 'heatmaps' not in fields:  # an empty gt_fields
        new_sample.gt_fields = copy.deepcopy(fields)
        return
    heatmaps = fields.heatmaps
    if heatmaps.dim() != 3:
        raise ValueError(
            'rescale: expected top-down heatmaps (K, H, W), got '
            f'shape {tuple(heatmaps.shape)}'
        )
    in_w, in_h = input_wh
    hm_h, hm_w = heatmaps.shape[-2:]
    stride = (in_h / hm_h, in_w / hm_w)
    out_h, out_w = batch_shape[0] / stride[0], batch_shape[1] / stride[1]
    if out_h != int(out_h) or out_w != int(out_w):
        raise ValueError(
            f'rescale: the padded input {batch_shape} is not a multiple of '
            f'the heatmap stride {stride}; use a size divisor that is a '
            "multiple of the network's output stride (e.g. 32)"
        )
    out_hw = (int(out_h), int(out_w))
    weights = None
    if labels is not None and 'keypoint_weights' in labels:
        weights = labels.keypoint_weights  # (1, K)

    if codec is None:
        new_heatmaps = _resample_heatmaps(heatmaps, stride, ratio, out_hw)
        alive = new_heatmaps.flatten(1).amax(dim=1) > 0
        new_weights = (
            None
            if weights is None
            else weights * alive.to(weights.dtype)[None]
        )
    else:
        codec = _build_codec(codec)
        r_h, r_w = ratio
        visible = (
            np.ones((1, heatmaps.shape[0]), dtype=np.float32)
            if weights is None
            else (weights.detach().cpu().numpy() > 0).astype(np.float32)
        )
        instances = sample.get('gt_instances')
        if instances is not None and 'transformed_keypoints' in instances:
            keypoints = np.asarray(
                _to_numpy(instances.transformed_keypoints)[..., :2],
                dtype=np.float64,
            ).reshape(1, -1, 2)
        else:  # recover input-space keypoints from the old targets
            peaks, values = heatmap_peaks(heatmaps)
            visible = visible * (values > 0)[None].astype(np.float32)
            keypoints = (peaks * np.asarray(codec.scale_factor)).reshape(
                1, -1, 2
            )
        keypoints = keypoints.copy()
        keypoints[..., 0] = (keypoints[..., 0] + 0.5) * r_w - 0.5
        keypoints[..., 1] = (keypoints[..., 1] + 0.5) * r_h - 0.5
        new_codec = _resized_codec(
            codec, (batch_shape[1], batch_shape[0]), (out_hw[1], out_hw[0])
        )
        encoded = new_codec.encode(
            keypoints=keypoints.astype(np.float32), keypoints_visible=visible
        )
        new_heatmaps = torch.as_tensor(
            encoded['heatmaps'], dtype=heatmaps.dtype, device=heatmaps.device
        )
        kept = torch.as_tensor(
            np.asarray(encoded['keypoint_weights']).reshape(1, -1) > 0
        )
        new_weights = (
            None
            if weights is None
            else weights * kept.to(weights.device, weights.dtype)
        )
    new_fields = type(fields)(metainfo=copy.deepcopy(fields.metainfo))
    new_fields.heatmaps = new_heatmaps
    new_sample.gt_fields = new_fields
    if new_weights is not None:
        new_labels = new_sample.gt_instance_labels
        new_labels.keypoint_weights = new_weights


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _scale_keypoints(keypoints: Any, ratio: Ratio) -> Any:
    """Input-space keypoints (pixel-centre convention) after the resize."""
    r_h, r_w = ratio
    if isinstance(keypoints, torch.Tensor):
        out = keypoints.clone()
    else:
        out = np.array(keypoints, copy=True)
    out[..., 0] = (out[..., 0] + 0.5) * r_w - 0.5
    out[..., 1] = (out[..., 1] + 0.5) * r_h - 0.5
    return out


@register_rescaler('pose')
def rescale_pose(
    inputs: torch.Tensor,
    data_samples: Optional[List[Any]],
    scale: float,
    size_divisor: int = 1,
    pad_value: float = 0.0,
    *,
    codec: Optional[Union[dict, Any]] = None,
    input_divisor: int = 32,
) -> Tuple[torch.Tensor, Optional[List[Any]]]:
    """Resize a top-down mmpose batch and regenerate its heatmap targets.

    The valid region of every image is its ``input_size`` (w, h) (the whole
    input when absent). The new batch is padded to a multiple of
    ``lcm(size_divisor, input_divisor)`` so that a heatmap head's output
    (input / heatmap stride) matches the regenerated targets.

    Targets: ``gt_fields.heatmaps`` get the heatmap grid of the padded new
    input (same stride as before) and ``gt_instance_labels.keypoint_weights``
    is zeroed for keypoints whose target vanished.

    * With ``codec`` (the model's codec, e.g. ``model.head.decoder``, or its
      config): the keypoints in input space are
      ``gt_instances.transformed_keypoints`` when packed
      (``PackPoseInputs(pack_transformed=True)``), else recovered from the
      old heatmaps' sub-pixel peaks; they are rescaled and encoded again by
      a copy of the codec with ``input_size`` / ``heatmap_size`` set to the
      padded new input and its heatmap grid (sigma etc. unchanged, in
      heatmap pixels).
    * Without: the old heatmaps are resampled (bilinear) onto the new grid,
      which shrinks the Gaussians with the image.

    ``gt_instances.keypoints`` / ``bboxes`` are in original-image coordinates
    in mmpose and stay unchanged; ``transformed_keypoints`` (input space) is
    rescaled. Metainfo: ``input_size``, ``batch_input_shape``, ``pad_shape``;
    ``input_center`` / ``input_scale`` (the crop in the original image) and
    ``img_shape`` (the original image) are unchanged.

    Args:
        inputs (Tensor): The preprocessed batch ``(B, C, H, W)``.
        data_samples (list[PoseDataSample], optional): Its data samples.
        scale (float): Resize factor of every image of the batch.
        size_divisor (int): The new batch's sides are multiples of it.
            Defaults to 1.
        pad_value (float): Value of padded pixels. Defaults to 0.
        codec (dict | BaseKeypointCodec, optional): The codec the targets
            were made with. Defaults to None (resample the targets).
        input_divisor (int): Extra size divisor: the output stride of the
            backbone (32 for ResNet / HRNet). Defaults to 32.

    Returns:
        tuple: The new batch and new data samples (the caller's are left
        untouched).
    """
    scale = _check_scale(scale)
    divisor = max(1, int(size_divisor or 1))
    divisor = (
        divisor
        * max(1, int(input_divisor))
        // math.gcd(divisor, max(1, int(input_divisor)))
    )
    valid_shapes = []
    for i in range(inputs.shape[0]):
        size = None
        if data_samples is not None:
            size = data_samples[i].metainfo.get('input_size')
        valid_shapes.append(
            _valid_shape(None if size is None else (size[1], size[0]), inputs)
        )
    resized = _resize_inputs(inputs, valid_shapes, scale, divisor, pad_value)
    if resized is None:
        return inputs, data_samples
    new_inputs, new_shapes, ratios, batch_shape = resized
    if data_samples is None:
        return new_inputs, None

    new_samples = []
    for sample, valid, new, ratio in zip(
        data_samples, valid_shapes, new_shapes, ratios
    ):
        new_sample = _new_sample(sample)
        for key, value in sample.items():
            if key == 'gt_fields':  # replaced by _rescale_pose_targets
                continue
            value = copy.deepcopy(value)
            if key == 'gt_instances' and 'transformed_keypoints' in value:
                value.transformed_keypoints = _scale_keypoints(
                    value.transformed_keypoints, ratio
                )
            setattr(new_sample, key, value)
        _rescale_pose_targets(
            sample, new_sample, (valid[1], valid[0]), ratio, batch_shape, codec
        )
        meta = {
            'input_size': (new[1], new[0]),
            'batch_input_shape': tuple(batch_shape),
            'pad_shape': (
                _round_up(new[0], divisor),
                _round_up(new[1], divisor),
            ),
        }
        new_sample.set_metainfo(meta)
        new_samples.append(new_sample)
    return new_inputs, new_samples
