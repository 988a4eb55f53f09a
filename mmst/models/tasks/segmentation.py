"""Semantic segmentation (mmseg).

Both passes are the segmentor's own ``loss``. For a sub-network's smaller
input the label maps are resized by nearest neighbour and padded with the
ignore value, as mmseg's ``SegDataPreProcessor`` pads them.
"""

from typing import Any, Dict

import torch.nn as nn

from mmst.registry import TASKS

from .base import padding_of
from .dense import DenseTask


@TASKS.register_module('segmentation')
class SegmentationTask(DenseTask):
    """mmseg segmentors (``BaseSegmentor``).

    :meth:`rescale` (:class:`DenseTask`) resizes every ``PixelData`` field
    (``gt_sem_seg``, ``gt_edge_map``, ``gt_depth_map``) with nearest
    neighbour and pads it to the new batch shape with ``seg_pad_value``
    (the loss's ignore index). Metainfo, in mmseg's convention:
    ``img_shape`` (the new image), ``pad_shape`` (the new batch shape),
    ``padding_size``, ``scale_factor`` (times the achieved ``(r_w, r_h)``).

    Settings, read from the ``SegDataPreProcessor``: ``size_divisor``,
    ``pad_value`` (``pad_val``), ``seg_pad_value`` (``seg_pad_val``).

    Args: see :class:`BaseTask`.
    """

    name = 'segmentation'
    model_bases = ('BaseSegmentor',)
    pad_shape = 'batch'

    def read_settings(self, architecture: nn.Module) -> Dict[str, Any]:
        pre = architecture.data_preprocessor
        seg_pad_value = float(getattr(pre, 'seg_pad_val', 255))
        return dict(padding_of(architecture), seg_pad_value=seg_pad_value)
