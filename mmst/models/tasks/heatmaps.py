"""Geometry of keypoint heatmaps, for the pose task: the sub-pixel peak of
a Gaussian heatmap, and resampling heatmaps onto the heatmap grid of a
resized input (mmpose's convention: heatmap pixel ``j`` sits at input
pixel ``j * stride``; a bilinear resize by ``r`` maps input pixel ``x`` to
``(x + 0.5) * r - 0.5``)."""

from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F


def heatmap_peaks(heatmaps: torch.Tensor) -> Tuple[np.ndarray, np.ndarray]:
    """Sub-pixel peak of every channel of Gaussian heatmaps.

    The argmax is refined per axis by fitting a parabola to the logarithm of
    the peak and its two neighbours, which is exact for a sampled Gaussian
    (a Gaussian centred on a pixel, as MSRAHeatmap draws it, gets no
    offset). A peak on the heatmap's border is not refined: a keypoint
    outside the heatmap is recovered at its border.

    Args:
        heatmaps (Tensor): ``(K, H, W)``.

    Returns:
        tuple: Peaks ``(K, 2)`` as (x, y) in heatmap pixels (float64), and
        the peak values ``(K,)``.
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


def resample_heatmaps(
    heatmaps: torch.Tensor,
    stride: Tuple[float, float],
    ratio: Tuple[float, float],
    out_size: Tuple[int, int],
) -> torch.Tensor:
    """Resample ``(K, h, w)`` heatmaps onto the heatmap grid ``out_size``
    ``(H', W')`` of the input resized by ``ratio`` ``(r_h, r_w)`` (bilinear;
    zeros outside the old heatmap). ``stride``: ``(s_h, s_w)`` input pixels
    per heatmap pixel, the same before and after."""
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
