"""Re-estimation of BatchNorm running statistics, for the full network
(when sub-network passes shared them) and for each evaluated sub-network
(whose statistics differ from the full network's)."""

from contextlib import contextmanager
from typing import Dict, Iterable, Iterator, List

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm


def _active_bns(model: nn.Module) -> List[_BatchNorm]:
    """The BN layers that ``model.train()`` puts in training mode (so a
    backbone's ``norm_eval`` / frozen stages are respected)."""
    was_training = model.training
    model.train()
    active = [
        m
        for m in model.modules()
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats
    ]
    model.train(was_training)
    return active


@contextmanager
def preserved_bn_stats(model: nn.Module) -> Iterator[None]:
    """Restore every BN running statistic on exit."""
    saved: Dict[_BatchNorm, Dict[str, torch.Tensor]] = {
        m: {k: v.clone() for k, v in m._buffers.items() if v is not None}
        for m in model.modules()
        if isinstance(m, _BatchNorm)
    }
    try:
        yield
    finally:
        for m, buffers in saved.items():
            for k, v in buffers.items():
                m._buffers[k].copy_(v)


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, dataloader: Iterable, num_images: int
) -> int:
    """Re-estimate the running statistics of ``model``'s BN layers as the
    exact average over about ``num_images`` images of ``dataloader``
    (whole batches), with everything else in eval mode.

    Args:
        model (nn.Module): An upstream model (BaseModel with a data
            preprocessor); an elastic context may be active.
        dataloader (Iterable): Usually the training dataloader.
        num_images (int): Images to use (at least one batch).

    Returns:
        int: The number of images used.
    """
    if num_images <= 0:
        raise ValueError(
            f'bn_recal_images={num_images!r} is invalid; '
            'allowed: a positive number of images'
        )
    bns = _active_bns(model)
    was_training = model.training
    model.eval()
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average = exact mean
        m.train()
    seen = 0
    try:
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            model(data['inputs'], data.get('data_samples'), mode='tensor')
            seen += data['inputs'].shape[0]
            if seen >= num_images:
                break
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.train(was_training)
    return seen
