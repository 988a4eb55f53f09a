"""Evaluation and re-estimation batches decoded once and kept in memory,
so every member and checkpoint of a menu runs on the same batches."""

import copy
import itertools
from typing import Any, Iterator, Optional

import torch

from mmst.engine.bn_recal import _batch_len, closing_iter

#: Default budget for caching the evaluation batches in memory.
DEFAULT_CACHE_MB = 4096


class CachedBatches:
    """Collated batches kept in memory and yielded again on every
    iteration (deep copies, so a model or evaluator that writes into the
    data samples cannot change what the next member sees): the same batches,
    in the same order, as the loader they were taken from.

    Args:
        batches (list): Collated batches (``dict(inputs=..., data_samples=
            ...)``).
        dataset: The loader's dataset (``len(dataset)`` is what evaluators
            are given).
        batch_size (int): The loader's batch size.
    """

    def __init__(self, batches: list, dataset, batch_size: int) -> None:
        self.batches = batches
        self.dataset = dataset
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict]:
        for batch in self.batches:
            yield copy.deepcopy(batch)

    @property
    def images(self) -> int:
        return sum(_batch_len(b) for b in self.batches)


def _nbytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0


def cache_loader(
    loader, max_mb: float = DEFAULT_CACHE_MB, max_batches: Optional[int] = None
) -> Optional[CachedBatches]:
    """The batches of one pass of ``loader`` (at most ``max_batches``), or
    None (nothing kept) when their inputs would exceed ``max_mb`` MiB
    (estimated from the first batch, checked as it goes)."""
    batches: list = []
    total = (
        len(loader) if max_batches is None else min(len(loader), max_batches)
    )
    used = 0
    with closing_iter(loader) as iterator:
        for data in itertools.islice(iterator, total):
            used += _nbytes(
                data.get('inputs') if isinstance(data, dict) else data
            )
            if not batches and used * total > max_mb * 2**20:
                return None
            if used > max_mb * 2**20:
                return None
            batches.append(data)
    batch_size = getattr(loader, 'batch_size', None) or (
        _batch_len(batches[0]) if batches else 1
    )
    return CachedBatches(batches, loader.dataset, batch_size)


def first_batch(loader) -> dict:
    """A copy of the first batch of ``loader``."""
    with closing_iter(loader) as iterator:
        return copy.deepcopy(next(iterator))
