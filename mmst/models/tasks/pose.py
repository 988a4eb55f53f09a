"""Top-down pose estimation with heatmap targets (mmpose).

Both passes are the estimator's own ``loss``. For a sub-network's smaller
input the heatmap targets are encoded again, by a copy of the model's codec
set to the padded new input, from the exact input-space keypoints
(``gt_instances.transformed_keypoints``, packed by
``PackPoseInputs(pack_transformed=True)``) rescaled like the image. Without
them the keypoints are recovered from the old targets' peaks, which sit on
the heatmap's border for keypoints near or outside the crop: the task warns
once.
"""

import copy
import inspect
import math
import warnings
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from mmst.registry import TASKS
from mmst.settings import SettingError
from mmst.subnet.rescale import (
    Resized,
    new_sample,
    rescale_batch,
    round_up,
    valid_shape,
)

from .base import BaseTask, Batch, Samples, padding_of
from .heatmaps import heatmap_peaks, resample_heatmaps

PEAKS_FALLBACK = (
    'mmst: pose data samples carry no gt_instances.transformed_keypoints; '
    "sub-networks' heatmap targets are re-encoded from keypoints recovered "
    'from the heatmap peaks, which are up to several heatmap pixels off for '
    'keypoints near or outside the crop. Pack the exact keypoints with '
    'PackPoseInputs(pack_transformed=True) in the training pipeline.'
)


def _resized_codec(codec: Any, input_size: tuple, heatmap_size: tuple) -> Any:
    """A new codec of the same type and settings with other
    ``input_size`` / ``heatmap_size`` (both ``(w, h)``).

    Raises:
        ValueError: A required argument the codec does not store.
    """
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


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def scale_keypoints(keypoints: Any, ratio: Tuple[float, float]) -> Any:
    """Input-space keypoints (..., 2+) after a resize by ``(r_h, r_w)``
    (pixel-centre convention: ``x' = (x + 0.5) * r_w - 0.5``); a copy."""
    r_h, r_w = ratio
    if isinstance(keypoints, torch.Tensor):
        out = keypoints.clone()
    else:
        out = np.array(keypoints, copy=True)
    out[..., 0] = (out[..., 0] + 0.5) * r_w - 0.5
    out[..., 1] = (out[..., 1] + 0.5) * r_h - 0.5
    return out


def packed_keypoints(sample: Any) -> Optional[np.ndarray]:
    """The exact input-space keypoints ``(1, K, 2)`` (float64) of a
    sample, or None when ``transformed_keypoints`` is not packed."""
    instances = sample.get('gt_instances')
    if instances is None or 'transformed_keypoints' not in instances:
        return None
    keypoints = _to_numpy(instances.transformed_keypoints)[..., :2]
    return np.asarray(keypoints, dtype=np.float64).reshape(1, -1, 2)


def _encode(
    sample: Any, old_weights: np.ndarray, r: Resized, grid: tuple, codec
) -> Tuple[np.ndarray, np.ndarray]:
    """Heatmaps ``(K, H', W')`` and weights ``(1, K)`` encoded by a copy of
    ``codec`` for the padded new input (``grid``: its heatmap (h, w))."""
    heatmaps = sample.gt_fields.heatmaps
    visible = (old_weights > 0).astype(np.float32)
    keypoints = packed_keypoints(sample)
    if keypoints is None:  # recovered from the old targets
        peaks, values = heatmap_peaks(heatmaps)
        visible = visible * (values > 0)[None].astype(np.float32)
        scale_factor = np.asarray(codec.scale_factor)
        keypoints = (peaks * scale_factor).reshape(1, -1, 2)
    elif 'keypoints_visible' in sample.gt_instances:
        packed = _to_numpy(sample.gt_instances.keypoints_visible)
        packed = packed[..., 0] if packed.ndim == 3 else packed
        visible = np.asarray(packed, np.float32).reshape(1, -1)
    keypoints = scale_keypoints(keypoints, r.ratio)
    new_codec = _resized_codec(
        codec, (r.batch[1], r.batch[0]), (grid[1], grid[0])
    )
    encoded = new_codec.encode(
        keypoints=keypoints.astype(np.float32), keypoints_visible=visible
    )
    weights = np.asarray(encoded['keypoint_weights']).reshape(1, -1)
    return encoded['heatmaps'], weights


def rescale_pose_targets(
    sample: Any, out: Any, r: Resized, codec: Optional[Any]
) -> None:
    """Set ``gt_fields.heatmaps`` and ``gt_instance_labels.keypoint_weights``
    of the new sample ``out``: heatmaps on the padded new input's heatmap
    grid (same stride), weights the old ones where positive (1 where not),
    zeroed where the new target is empty.

    Raises:
        NotImplementedError: Targets other than top-down heatmaps.
        ValueError: Heatmaps not ``(K, H, W)``, or a padded input that is
            not a multiple of the heatmap stride.
    """
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
    if fields is None or 'heatmaps' not in fields:
        if fields is not None:  # an empty gt_fields
            out.gt_fields = copy.deepcopy(fields)
        return
    heatmaps = fields.heatmaps
    if heatmaps.dim() != 3:
        raise ValueError(
            'rescale: expected top-down heatmaps (K, H, W), got '
            f'shape {tuple(heatmaps.shape)}'
        )
    stride = (r.valid[0] / heatmaps.shape[-2], r.valid[1] / heatmaps.shape[-1])
    grid_h, grid_w = r.batch[0] / stride[0], r.batch[1] / stride[1]
    if grid_h != int(grid_h) or grid_w != int(grid_w):
        raise ValueError(
            f'rescale: the padded input {r.batch} is not a multiple of '
            f'the heatmap stride {stride}; use a size divisor that is a '
            "multiple of the network's output stride (e.g. 32)"
        )
    grid = (int(grid_h), int(grid_w))
    weights = None
    if labels is not None and 'keypoint_weights' in labels:
        weights = labels.keypoint_weights  # (1, K)
    if codec is None:
        new_heatmaps = resample_heatmaps(heatmaps, stride, r.ratio, grid)
        kept = (new_heatmaps.flatten(1).amax(dim=1) > 0)[None]
    else:
        old = np.ones((1, heatmaps.shape[0]), np.float32)
        if weights is not None:
            old = _to_numpy(weights).reshape(1, -1)
        encoded, new_weights = _encode(sample, old, r, grid, codec)
        new_heatmaps = torch.as_tensor(encoded, dtype=heatmaps.dtype)
        kept = torch.as_tensor(new_weights > 0)
    new_fields = type(fields)(metainfo=copy.deepcopy(fields.metainfo))
    new_fields.heatmaps = new_heatmaps.to(heatmaps.device)
    out.gt_fields = new_fields
    if weights is not None:
        base = torch.where(weights > 0, weights, torch.ones_like(weights))
        kept = kept.to(weights.device, weights.dtype)
        out.gt_instance_labels.keypoint_weights = base * kept


@TASKS.register_module('pose')
class PoseTask(BaseTask):
    """mmpose top-down estimators (``BasePoseEstimator``) with heatmap
    targets.

    :meth:`rescale` resizes every image's valid region, its ``input_size``
    (w, h) (the whole input when absent), and pads the new batch to a
    multiple of ``lcm(size_divisor, input_divisor)`` so that a heatmap
    head's output matches the new targets (:func:`rescale_pose_targets`):

    * with a ``codec`` (the model's, or its config): encoded by a copy of it
      for the padded new input (sigma etc. unchanged, in heatmap pixels)
      from the keypoints rescaled like the image, ``transformed_keypoints``
      with ``keypoints_visible`` when packed, else the old heatmaps'
      sub-pixel peaks (then it warns once, :data:`PEAKS_FALLBACK`);
    * without: the old heatmaps resampled (bilinear) onto the new grid,
      which shrinks the Gaussians with the image.

    ``transformed_keypoints`` is rescaled; ``gt_instances.keypoints`` /
    ``bboxes`` (original-image coordinates) are unchanged. Metainfo:
    ``input_size``, ``batch_input_shape``, ``pad_shape``; ``input_center``,
    ``input_scale`` and ``img_shape`` are unchanged.

    Settings: ``size_divisor``, ``pad_value`` (read from the data
    preprocessor), ``codec`` (a ``BaseKeypointCodec`` or its config; read:
    ``head.decoder``), ``input_divisor`` (the backbone's output stride, 32
    for ResNet / HRNet).

    Args: see :class:`BaseTask`.
    """

    name = 'pose'
    model_bases = ('BasePoseEstimator',)
    defaults = dict(
        size_divisor=1, pad_value=0.0, codec=None, input_divisor=32
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.settings['codec'], dict):
            from mmpose.registry import KEYPOINT_CODECS

            codec = copy.deepcopy(self.settings['codec'])
            self.settings['codec'] = KEYPOINT_CODECS.build(codec)
        self._warned = False

    def fixed_input_shape(self) -> Optional[Tuple[int, int]]:
        """The codec's ``input_size`` as ``(h, w)`` (every top-down crop
        has it), or None without a codec."""
        size = getattr(self.settings['codec'], 'input_size', None)
        return None if size is None else (int(size[1]), int(size[0]))

    def check_rescale(self, input_resize: Any) -> None:
        """Refuse smaller sub-network inputs for a codec whose targets
        :func:`rescale_pose_targets` cannot encode again: only top-down
        heatmaps (a codec packing ``heatmaps`` into ``gt_fields`` and at
        most ``keypoint_weights`` into ``gt_instance_labels``, as
        ``MSRAHeatmap``, ``UDPHeatmap``, ``MegviiHeatmap``) follow a
        resize; regression (``RegressionLabel``, ``IntegralRegressionLabel``)
        and SimCC labels do not. Without a codec nothing is known here (the
        step raises if the targets are of another kind).

        Raises:
            mmst.settings.SettingError: For ``input_resize``, naming the
                codec, its targets and what is allowed.
        """
        codec = self.settings['codec']
        if codec is None:
            return
        fields = set(getattr(codec, 'field_mapping_table', None) or {})
        labels = set(getattr(codec, 'label_mapping_table', None) or {})
        other = sorted(
            (fields - {'heatmaps'}) | (labels - {'keypoint_weights'})
        )
        if other:
            raise SettingError(
                'input_resize',
                f'={input_resize!r} gives sub-networks smaller inputs, but '
                f'the pose targets of the codec {type(codec).__name__} '
                f'({other}) cannot be rescaled to them; allowed: '
                'input_resize=None (sub-networks at the main input size) or '
                'a top-down heatmap codec (MSRAHeatmap, UDPHeatmap, '
                'MegviiHeatmap)',
            )

    def read_settings(self, architecture: nn.Module) -> Dict[str, Any]:
        codec = getattr(architecture.head, 'decoder', None)
        return dict(padding_of(architecture), codec=codec)

    def rescale(self, inputs: Tensor, samples: Samples, scale: float) -> Batch:
        """The batch and its targets after the resize (see the class
        docstring); the caller's are left untouched."""
        codec = self.settings['codec']
        if codec is not None and not self._warned:
            if any(
                packed_keypoints(s) is None and s.get('gt_fields') is not None
                for s in samples or ()
            ):
                warnings.warn(PEAKS_FALLBACK, stacklevel=2)
                self._warned = True
        a = max(1, int(self.settings['size_divisor'] or 1))
        b = max(1, int(self.settings['input_divisor']))
        divisor = a * b // math.gcd(a, b)
        shapes = []
        for i in range(inputs.shape[0]):
            size = None if samples is None else samples[i].get('input_size')
            size = None if size is None else (size[1], size[0])
            shapes.append(valid_shape(size, inputs))

        def rescale_sample(sample: Any, r: Resized) -> Any:
            out = new_sample(sample)
            for key, value in sample.items():
                if key == 'gt_fields':  # made again below
                    continue
                value = copy.deepcopy(value)
                if key == 'gt_instances' and 'transformed_keypoints' in value:
                    value.transformed_keypoints = scale_keypoints(
                        value.transformed_keypoints, r.ratio
                    )
                setattr(out, key, value)
            rescale_pose_targets(sample, out, r, codec)
            h, w = r.new
            out.set_metainfo(
                {
                    'input_size': (w, h),
                    'batch_input_shape': tuple(r.batch),
                    'pad_shape': (round_up(h, divisor), round_up(w, divisor)),
                }
            )
            return out

        pad_value = self.settings['pad_value']
        return rescale_batch(
            inputs, samples, scale, shapes, divisor, pad_value, rescale_sample
        )
