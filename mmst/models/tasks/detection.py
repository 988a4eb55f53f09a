"""Object detection, instance and panoptic segmentation (mmdet).

Both passes are the detector's own ``loss``. For a sub-network's smaller
input the boxes are scaled and clipped to the new image, instance masks
resized like the image, label maps (panoptic ``gt_sem_seg``) by nearest
neighbour. Instances whose box becomes empty (zero width or height) after
scaling and clipping are dropped, every field alike: an empty box has no
regression target (``log(0)``), and a two-stage head's loss would turn NaN
where the main network's is finite.
"""

import copy
from typing import Any, Dict, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmst.registry import TASKS
from mmst.subnet.rescale import Resized, Shape

from .base import padding_of
from .dense import DenseTask

# Masks are resized in chunks to bound the float copy's memory.
_MASK_CHUNK = 32


def _resize_mask_array(
    masks: np.ndarray, r: Resized, pad_to: Optional[Shape], pad_value: int
) -> np.ndarray:
    """Binary masks ``(N, H, W)``: the valid region resized bilinearly
    (like the image) and thresholded at 0.5, padded with ``pad_value`` to
    ``pad_to`` (None: the new image shape)."""
    (h, w), (nh, nw) = r.valid, r.new
    out_h, out_w = pad_to if pad_to is not None else r.new
    out = np.full((masks.shape[0], out_h, out_w), pad_value, dtype=masks.dtype)
    for start in range(0, masks.shape[0], _MASK_CHUNK):
        chunk = torch.from_numpy(
            np.ascontiguousarray(masks[start : start + _MASK_CHUNK, :h, :w])
        )
        resized = F.interpolate(
            chunk[None].float(),
            size=(nh, nw),
            mode='bilinear',
            align_corners=False,
        )[0]
        out[start : start + _MASK_CHUNK, :nh, :nw] = (resized >= 0.5).numpy()
    return out


def rescale_masks(
    masks: Any, r: Resized, pad_mask: Optional[bool], pad_value: int
) -> Any:
    """Instance masks of one image (``BitmapMasks``, ``PolygonMasks`` or a
    ``(N, H, W)`` tensor) after the resize. Masks the preprocessor padded
    to the batch shape (``pad_mask``; None: those of the old batch's size)
    are padded to the new batch shape, the others get the new image shape.

    Raises:
        TypeError: Masks of another type.
    """
    from mmdet.structures.mask import BitmapMasks, PolygonMasks

    if isinstance(masks, torch.Tensor):
        size = tuple(masks.shape[-2:])
    else:
        size = (masks.height, masks.width)
    padded = (size == tuple(r.old_batch)) if pad_mask is None else pad_mask
    pad_to = tuple(r.batch) if padded else None
    out_h, out_w = pad_to if padded else r.new
    r_h, r_w = r.ratio

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
        array = _resize_mask_array(masks.masks, r, pad_to, pad_value)
        return BitmapMasks(array, out_h, out_w)
    if isinstance(masks, torch.Tensor):
        array = masks.detach().cpu().numpy()
        array = _resize_mask_array(array, r, pad_to, pad_value)
        return torch.from_numpy(array).to(masks.device)
    raise TypeError(
        f'rescale: instance masks of type {type(masks)} are not '
        'supported; allowed: BitmapMasks, PolygonMasks, Tensor'
    )


def rescale_boxes(boxes: Any, r: Resized) -> Any:
    """``(N, 4)`` xyxy boxes (Tensor) or mmdet ``BaseBoxes`` scaled by
    ``(r_w, r_h)`` and clipped to the new image.

    Raises:
        ValueError: A tensor that is not ``(N, 4)``.
    """
    r_h, r_w = r.ratio
    if not isinstance(boxes, torch.Tensor):  # mmdet BaseBoxes
        out = copy.deepcopy(boxes)
        out.rescale_((r_w, r_h))
        out.clip_(r.new)
        return out
    if boxes.shape[-1] != 4:
        raise ValueError(
            'rescale: only (N, 4) xyxy boxes are supported, '
            f'got shape {tuple(boxes.shape)}'
        )
    out = boxes * boxes.new_tensor([r_w, r_h, r_w, r_h])
    out[..., 0::2] = out[..., 0::2].clamp(0, r.new[1])
    out[..., 1::2] = out[..., 1::2].clamp(0, r.new[0])
    return out


def _empty(boxes: Any) -> torch.Tensor:
    """``(N,)`` bool: boxes of zero (or negative) width or height."""
    if isinstance(boxes, torch.Tensor):
        widths = boxes[:, 2] - boxes[:, 0]
        heights = boxes[:, 3] - boxes[:, 1]
    else:  # mmdet BaseBoxes
        widths, heights = boxes.widths, boxes.heights
    return (widths <= 0) | (heights <= 0)


def rescale_instances(
    instances: Any, r: Resized, pad_mask: Optional[bool], mask_pad_value: int
) -> Any:
    """A new ``InstanceData``: ``bboxes`` by :func:`rescale_boxes`,
    ``masks`` by :func:`rescale_masks`, other fields copied; instances whose
    box became empty are dropped from every field."""
    out = type(instances)(metainfo=copy.deepcopy(instances.metainfo))
    for key, value in instances.items():
        if key == 'bboxes':
            value = rescale_boxes(value, r)
        elif key == 'masks':
            value = rescale_masks(value, r, pad_mask, mask_pad_value)
        else:
            value = copy.deepcopy(value)
        setattr(out, key, value)
    if 'bboxes' in instances and len(instances):
        emptied = _empty(out.bboxes) & ~_empty(instances.bboxes)
        if emptied.any():
            out = out[~emptied.cpu()]
    return out


@TASKS.register_module('detection')
class DetectionTask(DenseTask):
    """mmdet detectors (``BaseDetector``): detection, instance and panoptic
    segmentation.

    :meth:`rescale` (:class:`DenseTask`) handles every ``InstanceData``
    field of the samples (``gt_instances``, ``ignored_instances``,
    ``proposals`` ...) by :func:`rescale_instances` (boxes scaled and
    clipped; masks resized, bitmaps thresholded at 0.5, polygons scaled;
    emptied instances dropped) and every ``PixelData`` field (``gt_sem_seg``
    of panoptic models, ``gt_panoptic_seg``) by nearest neighbour.
    Metainfo: ``img_shape``, ``pad_shape`` (the new image rounded up to
    ``size_divisor``, as ``DetDataPreprocessor`` does),
    ``batch_input_shape``, ``scale_factor`` and ``homography_matrix``;
    ``ori_shape`` is unchanged.

    Settings, read from the ``DetDataPreprocessor``: ``size_divisor``
    (``pad_size_divisor``), ``pad_value``, ``pad_mask`` (masks padded to the
    batch shape; None: those of the old batch's size are),
    ``mask_pad_value``, ``pad_seg``, ``seg_pad_value``.

    Args: see :class:`BaseTask`.
    """

    name = 'detection'
    model_bases = ('BaseDetector',)
    defaults = dict(DenseTask.defaults, pad_mask=None, mask_pad_value=0)

    def read_settings(self, architecture: nn.Module) -> Dict[str, Any]:
        pre = architecture.data_preprocessor
        return dict(
            padding_of(architecture),
            pad_mask=getattr(pre, 'pad_mask', None),
            mask_pad_value=int(getattr(pre, 'mask_pad_value', 0)),
            pad_seg=getattr(pre, 'pad_seg', None),
            seg_pad_value=float(getattr(pre, 'seg_pad_value', 255)),
        )

    def rescale_instances(self, key: str, instances: Any, r: Resized) -> Any:
        """:func:`rescale_instances` with the task's mask padding."""
        pad_mask = self.settings['pad_mask']
        mask_pad_value = self.settings['mask_pad_value']
        return rescale_instances(instances, r, pad_mask, mask_pad_value)
