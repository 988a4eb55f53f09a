"""Many sub-networks of one model on the same batches, sharing the blocks
their prefixes share.

A kept block's output, and the BN statistics re-estimated inside it, depend
only on what runs before it: the blocks kept in the earlier stages and the
earlier kept blocks of its own stage (:func:`block_keys`). Members of a
space that agree on that prefix compute the block once per batch. For the
27 members of a 3 x 3-block ResNet-20 space that is 39 block passes per
image instead of 162. Everything else (stem, layers between stages, neck,
head, the evaluator) runs per member as before, so the numbers equal
:func:`mmst.engine.evaluate_subnet` run for each member on its own: the
same operations on the same values in the same order (tested bit for bit).

Memory: per batch, the outputs of the blocks on the current member's path
(members run in prefix order, :func:`prefix_order`), about one forward's
block outputs.

Single process only: the menu and its tests; a distributed re-estimation is
:func:`mmst.engine.recalibrate_bn`.
"""

import copy
import itertools
from contextlib import contextmanager
from typing import Callable, Dict, Hashable, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.dist import get_world_size
from mmengine.evaluator import Evaluator

from mmst.subnet.elastic import ElasticDepth
from mmst.subnet.space import Subnet

BlockKey = Tuple[Tuple[Tuple[int, ...], ...], Tuple[int, ...]]


def block_keys(subnet: Subnet) -> Dict[Tuple[int, int], BlockKey]:
    """For each kept block ``(stage, index)`` of ``subnet``, what its
    output depends on: the blocks kept in the earlier stages and those kept
    in its own stage up to and including it."""
    prefix = tuple(tuple(kept) for kept in subnet)
    return {
        (i, j): (prefix[:i], tuple(k for k in kept if k <= j))
        for i, kept in enumerate(prefix)
        for j in kept
    }


def prefix_order(subnets: List[Subnet]) -> List[int]:
    """Indices of ``subnets`` sorted so that members sharing a prefix run
    one after another (depth-first through the prefix tree)."""
    return sorted(
        range(len(subnets)),
        key=lambda i: tuple(tuple(kept) for kept in subnets[i]),
    )


def _versions(out) -> Optional[tuple]:
    if isinstance(out, torch.Tensor):
        return (out._version,)
    if isinstance(out, (tuple, list)) and out:
        if all(isinstance(t, torch.Tensor) for t in out):
            return tuple(t._version for t in out)
    return None  # not a tensor output: not shared


class PrefixCache:
    """Block outputs of the current batch, reused by later members with the
    same prefix. An output that something changed in place since (its
    tensor version moved) is computed again."""

    def __init__(self, elastic: ElasticDepth) -> None:
        self.stages = elastic.stages
        self.outputs: Dict[BlockKey, tuple] = {}
        self.computed = 0
        self.reused = 0

    def clear(self) -> None:
        self.outputs.clear()

    def _forward(self, block: nn.Module, key: BlockKey) -> Callable:
        forward = type(block).forward

        def cached_forward(*args, **kwargs):
            hit = self.outputs.get(key)
            if hit is not None and _versions(hit[0]) == hit[1]:
                self.reused += 1
                return hit[0]
            out = forward(block, *args, **kwargs)
            self.computed += 1
            versions = _versions(out)
            if versions is not None:
                self.outputs[key] = (out, versions)
            return out

        return cached_forward

    @contextmanager
    def active(self, subnet: Subnet) -> Iterator[None]:
        """Within the context (and an ``elastic.activate(subnet)`` one)
        the kept blocks reuse or store their outputs; outputs off
        ``subnet``'s path are dropped first."""
        keys = block_keys(subnet)
        wanted = set(keys.values())
        for key in [k for k in self.outputs if k not in wanted]:
            del self.outputs[key]
        blocks = [(self.stages[i][j], key) for (i, j), key in keys.items()]
        for block, key in blocks:
            block.forward = self._forward(block, key)
        try:
            yield
        finally:
            for block, _ in blocks:
                del block.forward


def _bn_owners(
    bns: List[nn.Module], elastic: ElasticDepth
) -> Dict[nn.Module, Tuple[int, int]]:
    """The block ``(stage, index)`` each BN layer sits in (BN layers
    outside the elastic blocks are absent)."""
    owners = {}
    wanted = set(bns)
    for i, stage in enumerate(elastic.stages):
        for j, block in enumerate(stage):
            for m in block.modules():
                if m in wanted:
                    owners[m] = (i, j)
    return owners


def _stats_key(
    bn: nn.Module, owners: dict, keys: dict, member: int
) -> Optional[Hashable]:
    """Whose statistics ``bn`` uses for ``member``: its block's prefix, or
    the member's own (BN layers outside the blocks); None when a skipped
    block holds it."""
    owner = owners.get(bn)
    if owner is None:
        return ('member', member)
    return keys.get(owner)


@torch.no_grad()
def recalibrate_members(
    model: nn.Module,
    elastic: ElasticDepth,
    subnets: List[Subnet],
    dataloader,
    num_images: int,
    on_batch: Optional[Callable[[int, int], None]] = None,
) -> Tuple[List[Dict[nn.Module, Tuple[torch.Tensor, torch.Tensor]]], int]:
    """The BN statistics each of ``subnets`` gets from
    :func:`mmst.engine.recalibrate_bn` on ``num_images`` images of
    ``dataloader``, computed in one pass over the batches with the prefixes
    shared. The model's own statistics are unchanged. ``on_batch(done,
    total)`` is called after each batch.

    Returns:
        tuple: ``(stats, images)``: per member, ``{bn: (running_mean,
        running_var)}`` for the BN layers its forward reaches; the number
        of images used.

    Raises:
        ValueError: As :func:`mmst.engine.recalibrate_bn`; or a distributed
            run (single process only).
    """
    from mmst.engine.bn_recal import (
        _active_bns,
        add_sums,
        check_recal_images,
        closing_iter,
        new_sums,
        recal_mode,
        stats_from_sums,
    )

    if num_images <= 0:
        raise ValueError(
            f'bn_recal_images={num_images!r} is invalid; '
            'allowed: a positive number of images'
        )
    if get_world_size() > 1:
        raise ValueError(
            'shared-prefix BN re-estimation runs in one process; use '
            'mmst.engine.recalibrate_bn in a distributed run'
        )
    bns = _active_bns(model)
    device = next((m.running_mean.device for m in bns), torch.device('cpu'))
    batches = check_recal_images(dataloader, num_images, device)
    owners = _bn_owners(bns, elastic)
    keys = [block_keys(s) for s in subnets]
    sums: Dict[Tuple[nn.Module, Hashable], dict] = {}
    current: Dict[nn.Module, dict] = {}

    def hook(module: nn.Module, args) -> None:
        add_sums(current[module], args[0])

    cache = PrefixCache(elastic)
    order = prefix_order(subnets)
    handles = [m.register_forward_pre_hook(hook) for m in bns]
    seen = 0
    try:
        with recal_mode(model, bns), closing_iter(dataloader) as iterator:
            for done, data in enumerate(
                itertools.islice(iterator, batches), 1
            ):
                cache.clear()
                for idx in order:
                    current.clear()
                    for bn in bns:
                        key = _stats_key(bn, owners, keys[idx], idx)
                        if key is not None:
                            acc = sums.get((bn, key))
                            if acc is None:
                                acc = new_sums(bn.num_features, device)
                                sums[(bn, key)] = acc
                            current[bn] = acc
                    batch = model.data_preprocessor(copy.deepcopy(data), False)
                    with elastic.activate(subnets[idx]), cache.active(
                        subnets[idx]
                    ):
                        model(
                            batch['inputs'],
                            batch.get('data_samples'),
                            mode='tensor',
                        )
                seen += batch['inputs'].shape[0]
                if on_batch is not None:
                    on_batch(done, batches)
    finally:
        for h in handles:
            h.remove()
    if seen < num_images:
        raise ValueError(
            f'bn_recal_images={num_images} images were asked for BN '
            f're-estimation, but the loader yielded only {seen} in '
            f'{batches} batch(es); the BN statistics are unchanged'
        )
    stats = []
    for idx in range(len(subnets)):
        member = {}
        for bn in bns:
            key = _stats_key(bn, owners, keys[idx], idx)
            acc = sums.get((bn, key))
            n = acc['n'].item() if acc is not None else 0
            if n:
                mean, var = stats_from_sums(acc['s1'], acc['s2'], n)
                member[bn] = (
                    mean.to(bn.running_mean.dtype),
                    var.to(bn.running_var.dtype),
                )
        stats.append(member)
    return stats, seen


@torch.no_grad()
def evaluate_members(
    model: nn.Module,
    elastic: ElasticDepth,
    subnets: List[Subnet],
    dataloader,
    evaluators: List[Evaluator],
    stats: Optional[List[Dict[nn.Module, tuple]]] = None,
    on_batch: Optional[Callable[[int, int], None]] = None,
) -> List[Dict[str, float]]:
    """Metrics of ``model`` run as each of ``subnets`` (each with its own
    ``evaluators`` entry), as :func:`mmst.engine.evaluate_model` gives them
    member by member, in one pass over ``dataloader`` with the prefixes
    shared. ``stats`` (from :func:`recalibrate_members`) replace the BN
    statistics per member; the model's own are restored afterwards.
    ``on_batch(done, total)`` is called after each batch.

    Returns:
        list[dict]: The metrics of each member, in ``subnets``' order.
    """
    from mmst.engine import preserved_bn_stats
    from mmst.models.algorithms.stimulative import unwrap_st

    if len(evaluators) != len(subnets):
        raise ValueError(
            f'{len(evaluators)} evaluators for {len(subnets)} members; '
            'give one evaluator per member'
        )
    arch = unwrap_st(model)
    cache = PrefixCache(elastic)
    order = prefix_order(subnets)
    model.eval()
    with preserved_bn_stats(arch):
        for done, data in enumerate(dataloader, 1):
            cache.clear()
            for idx in order:
                for bn, (mean, var) in (stats[idx] if stats else {}).items():
                    bn.running_mean.copy_(mean)
                    bn.running_var.copy_(var)
                batch = copy.deepcopy(data)
                with elastic.activate(subnets[idx]), cache.active(
                    subnets[idx]
                ):
                    outputs = model.val_step(batch)
                evaluators[idx].process(data_samples=outputs, data_batch=batch)
            if on_batch is not None:
                on_batch(done, len(dataloader))
    return [e.evaluate(len(dataloader.dataset)) for e in evaluators]
