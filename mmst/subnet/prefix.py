"""Running many sub-networks on the same batch, computing the blocks their
prefixes share once.

A kept block's output depends only on what runs before it: the blocks kept
in the earlier stages and the earlier kept blocks of its own stage
(:func:`block_keys`), given the same BN statistics. Members of a space
that agree on that prefix compute the block once per batch: for the 27
members of a 3 x 3-block ResNet-20 space, 39 block passes per image instead
of 162. Everything outside the elastic blocks (stem, layers between stages,
neck, head) runs per member as before, so every member gets exactly the
values it gets when run alone (the same operations on the same values in
the same order; tested bit for bit).

Used by BN re-estimation (:func:`mmst.engine.member_bn_stats`) and member
evaluation (:func:`mmst.engine.evaluate_members`).
"""

from contextlib import ExitStack, contextmanager
from typing import (
    Callable,
    Dict,
    Hashable,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

import torch
import torch.nn as nn

from .elastic import ElasticDepth
from .space import Subnet

BlockKey = Tuple[Tuple[Tuple[int, ...], ...], Tuple[int, ...]]


def full_subnet(elastic: ElasticDepth) -> Subnet:
    """The sub-network that keeps every block of ``elastic``."""
    return tuple(tuple(range(d)) for d in elastic.stage_depths)


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
    same prefix and the same ``group`` (members whose BN statistics agree on
    every shared prefix: e.g. all re-estimated by prefix, or all stored).
    An output that something changed in place since (its tensor version
    moved) is computed again.

    Memory: the outputs of the blocks on the current member's path (members
    run in :func:`prefix_order`), about one forward's block outputs.
    """

    def __init__(self, elastic: ElasticDepth) -> None:
        self.stages = elastic.stages
        self.outputs: Dict[Tuple[Hashable, BlockKey], tuple] = {}

    def clear(self) -> None:
        self.outputs.clear()

    def _forward(self, block: nn.Module, key: tuple) -> Callable:
        forward = type(block).forward

        def cached_forward(*args, **kwargs):
            hit = self.outputs.get(key)
            if hit is not None and _versions(hit[0]) == hit[1]:
                return hit[0]
            out = forward(block, *args, **kwargs)
            versions = _versions(out)
            if versions is not None:
                self.outputs[key] = (out, versions)
            return out

        return cached_forward

    @contextmanager
    def active(self, subnet: Subnet, group: Hashable = None) -> Iterator[None]:
        """Within the context (and an ``elastic.activate(subnet)`` one)
        the kept blocks reuse or store their outputs; outputs off
        ``subnet``'s path (or of another ``group``) are dropped first."""
        keys = {b: (group, k) for b, k in block_keys(subnet).items()}
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


def member_passes(
    elastic: Optional[ElasticDepth],
    members: Sequence[Subnet],
    batches: Iterable,
    visit: Callable[[int, object], None],
    groups: Optional[Sequence[Hashable]] = None,
    on_batch: Optional[Callable[[int, int], None]] = None,
    total: int = 0,
) -> None:
    """For each of ``batches`` and each of ``members`` (in
    :func:`prefix_order`), call ``visit(member index, batch)`` while the
    member is active (``elastic.activate``) and, with several members, its
    kept blocks reuse the outputs of earlier members of the same ``groups``
    entry on this batch (:class:`PrefixCache`). ``elastic=None``: one
    member, the network as it runs now. ``on_batch(done, total)`` after
    each batch. The one loop of BN re-estimation
    (:func:`mmst.engine.member_bn_stats`) and member evaluation
    (:func:`mmst.engine.run_members`)."""
    cache = PrefixCache(elastic) if len(members) > 1 else None
    order = prefix_order(list(members)) if cache else range(len(members))
    for done, data in enumerate(batches, 1):
        if cache is not None:
            cache.clear()
        for idx in order:
            with ExitStack() as stack:
                if elastic is not None:
                    stack.enter_context(elastic.activate(members[idx]))
                if cache is not None:
                    group = groups[idx] if groups is not None else None
                    stack.enter_context(cache.active(members[idx], group))
                visit(idx, data)
        if on_batch is not None:
            on_batch(done, total)
