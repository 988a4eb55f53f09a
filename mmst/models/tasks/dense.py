"""The base of the detection and the segmentation tasks: rescaling of
dense-prediction samples, label maps (``PixelData``), the image metainfo,
and the loop over a sample's fields.

Every image's valid region (``img_shape``) is resized (see
:func:`mmst.subnet.rescale.rescale_batch`); what depends on the image size
follows the achieved per-axis ratios ``(r_h, r_w)``. The library imports
(mmengine structures only) are inside the functions.
"""

import copy
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from mmst.subnet.rescale import (
    Resized,
    Shape,
    new_sample,
    rescale_batch,
    round_up,
    valid_shape,
)

from .base import BaseTask, Batch, Samples


def resize_label_map(
    value: torch.Tensor,
    valid: Shape,
    new: Shape,
    pad_to: Optional[Shape],
    pad_value: float,
) -> torch.Tensor:
    """Nearest-resize the valid ``(h, w)`` region of a ``(C, H, W)`` or
    ``(H, W)`` map to ``new`` and pad it (bottom / right) with
    ``pad_value`` to ``pad_to`` (None: no padding). A new tensor."""
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
        bottom = max(pad_to[0] - region.shape[-2], 0)
        right = max(pad_to[1] - region.shape[-1], 0)
        region = F.pad(region, (0, right, 0, bottom), value=pad_value)
    return region[0] if squeeze else region


def rescale_pixel_data(
    pixel_data: Any, r: Resized, pad: Optional[bool], pad_value: float
) -> Any:
    """A new ``PixelData`` whose maps (Tensor or ndarray) are
    nearest-resized; maps the preprocessor padded to the batch shape
    (``pad``; None: those of the old batch's size) are padded to the new
    batch shape with ``pad_value``, the others keep the new image shape."""
    out = type(pixel_data)(metainfo=copy.deepcopy(pixel_data.metainfo))
    for key, value in pixel_data.items():
        as_numpy = isinstance(value, np.ndarray)
        value = torch.from_numpy(value) if as_numpy else value
        padded = (
            tuple(value.shape[-2:]) == tuple(r.old_batch)
            if pad is None
            else pad
        )
        value = resize_label_map(
            value, r.valid, r.new, r.batch if padded else None, pad_value
        )
        setattr(out, key, value.numpy() if as_numpy else value)
    return out


def dense_meta(sample: Any, r: Resized, divisor: int, pad_shape: str) -> dict:
    """The metainfo of a rescaled image: ``img_shape``, ``pad_shape``
    (``'image'``: the new image rounded up to ``divisor``, mmdet;
    ``'batch'``: the new batch shape, mmseg), ``batch_input_shape`` and
    ``padding_size`` (where the sample has them), ``scale_factor``
    (``(w, h)`` from the original image, times ``(r_w, r_h)``) and
    ``homography_matrix``."""
    (h, w), (r_h, r_w), batch = r.new, r.ratio, r.batch
    meta = {'img_shape': (h, w)}
    if pad_shape == 'batch':
        meta['pad_shape'] = tuple(batch)
    else:
        meta['pad_shape'] = (round_up(h, divisor), round_up(w, divisor))
    if 'batch_input_shape' in sample:
        meta['batch_input_shape'] = tuple(batch)
    if 'padding_size' in sample:
        meta['padding_size'] = (0, batch[1] - w, 0, batch[0] - h)
    if 'scale_factor' in sample:
        sf = sample.scale_factor
        sf = (sf, sf) if np.isscalar(sf) else sf
        meta['scale_factor'] = (float(sf[0]) * r_w, float(sf[1]) * r_h)
    if sample.get('homography_matrix') is not None:
        matrix = np.asarray(sample.homography_matrix)
        scaling = np.diag([r_w, r_h, 1.0]).astype(matrix.dtype)
        meta['homography_matrix'] = scaling @ matrix
    return meta


class DenseTask(BaseTask):
    """The base of the detection and the segmentation tasks: a batch whose
    ground truth has the image's geometry.

    :meth:`rescale` resizes every image's valid region (``img_shape``) and
    makes each new data sample: ``PixelData`` fields by
    :func:`rescale_pixel_data`, ``InstanceData`` fields by
    :meth:`rescale_instances`, other fields copied, the metainfo by
    :func:`dense_meta` (``pad_shape`` as the class's ``pad_shape``).

    Settings: ``size_divisor``, ``pad_value`` (the images'), ``seg_pad_value``
    (the label maps'), ``pad_seg`` (whether the label maps are padded to the
    batch shape; None: those of the old batch's size are).

    Args: see :class:`BaseTask`.
    """

    pad_shape = 'image'
    defaults = {
        'size_divisor': 1,
        'pad_value': 0.0,
        'seg_pad_value': 255.0,
        'pad_seg': None,
    }

    def rescale(self, inputs: Tensor, samples: Samples, scale: float) -> Batch:
        """The batch and its ground truth after the resize (see the class
        docstring); the caller's are left untouched."""
        if samples is None:
            shapes = [valid_shape(None, inputs)] * inputs.shape[0]
        else:
            shapes = [
                valid_shape(s.metainfo.get('img_shape'), inputs)
                for s in samples
            ]
        divisor = max(1, int(self.settings['size_divisor'] or 1))
        pad_value = self.settings['pad_value']
        return rescale_batch(
            inputs, samples, scale, shapes, divisor, pad_value, self._sample
        )

    def _sample(self, sample: Any, r: Resized) -> Any:
        from mmengine.structures import InstanceData, PixelData

        out = new_sample(sample)
        pad_seg = self.settings['pad_seg']
        seg_pad_value = self.settings['seg_pad_value']
        for key, value in sample.items():
            if isinstance(value, PixelData):
                value = rescale_pixel_data(value, r, pad_seg, seg_pad_value)
            elif isinstance(value, InstanceData):
                value = self.rescale_instances(key, value, r)
            else:
                value = copy.deepcopy(value)
            setattr(out, key, value)
        divisor = max(1, int(self.settings['size_divisor'] or 1))
        out.set_metainfo(dense_meta(sample, r, divisor, self.pad_shape))
        return out

    def rescale_instances(self, key: str, instances: Any, r: Resized) -> Any:
        """Instances ``key`` of a sample after the resize.

        Raises:
            TypeError: This task has no instances.
        """
        raise TypeError(
            f'rescale: instances {key!r} cannot be rescaled by the task '
            f'{self.name!r}; allowed: label maps (PixelData)'
        )
