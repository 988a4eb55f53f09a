"""Re-estimation of BatchNorm running statistics, for the full network
(when sub-network passes shared them) and for each evaluated sub-network
(whose statistics differ from the full network's).

Three pieces, used by :class:`mmst.engine.SubnetValLoop` and by the analysis
tools alike:

- :func:`build_recal_loader`: the images, a seeded copy of the config's
  ``train_dataloader`` that yields the same images with the same
  augmentations every time and leaves the global random generators (and the
  training loop's own loader) as they were;
- :func:`member_bn_stats`: the statistics, the exact mean and unbiased
  variance of every BN layer's input over those images, summed over all
  ranks of a distributed run, for one network or for many members at once
  (shared prefixes computed once); :func:`recalibrate_bn` writes them into
  the network as it runs now;
- :func:`preserved_bn_stats`: puts the model's own statistics back after a
  sub-network was evaluated.
"""

import copy
import itertools
import math
import random
from contextlib import contextmanager
from typing import (
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

import numpy as np
import torch
import torch.nn as nn
from mmengine.dataset import DefaultSampler
from mmengine.dist import all_reduce, get_world_size
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader

from mmst.settings import SettingError
from mmst.subnet.elastic import ElasticDepth
from mmst.subnet.prefix import block_keys, full_subnet, member_passes
from mmst.subnet.space import Subnet

from .checkpoint import get_rng_state, set_rng_state

#: Seed of the re-estimation images and augmentations unless told otherwise.
DEFAULT_RECAL_SEED = 0


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


def has_trainable_bn(model: nn.Module) -> bool:
    """Whether training updates any BN statistics of ``model`` (False for
    LayerNorm-only models: ConvNeXt, Swin, ViT): nothing to re-estimate."""
    return bool(_active_bns(model))


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


# -- the images ------------------------------------------------------------
@contextmanager
def seeded_rng(seed: int) -> Iterator[None]:
    """Seed ``random``, ``numpy`` and ``torch`` (CPU and, when initialised,
    CUDA) with ``seed`` for the duration, and put their previous states back
    on exit, so that whatever runs inside is repeatable and the caller's
    random sequence (e.g. training's augmentations) is not perturbed."""
    state = get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        set_rng_state(state)


def _batch_len(data) -> int:
    """Number of samples in a collated batch (``dict(inputs=...)`` or a
    tuple whose first element holds the inputs)."""
    inputs = data['inputs'] if isinstance(data, dict) else data[0]
    return len(inputs)


@contextmanager
def closing_iter(loader: Iterable) -> Iterator[Iterator]:
    """An iterator over ``loader``, closed on exit even when the loop stops
    early (a :class:`RecalLoader` restores the random generators then)."""
    iterator = iter(loader)
    try:
        yield iterator
    finally:
        close = getattr(iterator, 'close', None)
        if close is not None:
            close()


class RecalLoader:
    """A dataloader that yields the same images, with the same random
    augmentations, every time it is iterated: the sampler is seeded (and
    stays at epoch 0), and the global random generators are seeded with
    ``seed`` while it is iterated and restored when the iteration ends or
    is closed (:func:`seeded_rng`).

    Args:
        dataloader (DataLoader): Built with a seeded sampler and
            ``persistent_workers=False`` (see :func:`build_recal_loader`).
        seed (int): Seed of ``random``, ``numpy`` and ``torch``.

    Attributes:
        last_count (int): Images yielded by the latest iteration (this
            process).
    """

    def __init__(self, dataloader: DataLoader, seed: int) -> None:
        self.dataloader = dataloader
        self.dataset = dataloader.dataset
        self.seed = seed
        self.last_count = 0

    @property
    def batch_size(self) -> Optional[int]:
        return self.dataloader.batch_size

    def __len__(self) -> int:
        return len(self.dataloader)

    def __iter__(self):
        with seeded_rng(self.seed):
            self.last_count = 0
            for data in self.dataloader:
                self.last_count += _batch_len(data)
                yield data


def build_recal_loader(
    loader_cfg, seed: int = DEFAULT_RECAL_SEED
) -> RecalLoader:
    """The BN re-estimation loader: a copy of ``loader_cfg`` (the config's
    ``train_dataloader``: its dataset, pipeline, batch size and workers;
    a whole config may be given, its ``train_dataloader`` is used) with the
    sampler replaced by ``DefaultSampler(shuffle=True, seed=seed)``, a
    configured ``batch_sampler`` dropped (plain batches of ``batch_size``) and
    ``persistent_workers=False``, wrapped in :class:`RecalLoader`.

    In a distributed run each rank gets its shard of the shuffled dataset.
    The loader is independent of the training loop's: its iteration never
    touches training's sampler or iterator (an ``InfiniteSampler`` in
    particular), and building or iterating it leaves the global random
    generators as they were. Build it once and reuse it (every iteration
    yields the same images).

    Args:
        loader_cfg (dict | Config): A dataloader config (as in an MMEngine
            config), or a whole config (a ``Config``, or a dict with
            ``model`` / ``train_dataloader``); not modified.
        seed (int): Seed of the sampler and of the augmentations.

    Returns:
        RecalLoader: The seeded loader.

    Raises:
        TypeError: ``loader_cfg`` is not a dict.
        ValueError: The config has no ``train_dataloader``, or it has no
            ``batch_size``.
    """
    from mmengine.config import Config
    from mmengine.runner import Runner  # mmengine.runner imports engine

    if isinstance(loader_cfg, Config) or (
        isinstance(loader_cfg, dict)
        and ('train_dataloader' in loader_cfg or 'model' in loader_cfg)
    ):
        loader_cfg = loader_cfg.get('train_dataloader')
    if loader_cfg is None or loader_cfg == {}:
        raise ValueError(
            'BN re-estimation needs train_dataloader in the config (its '
            'dataset, pipeline and batch_size are used); set it, or '
            're-estimate nothing (tools: --bn-recal-images 0 / '
            '--no-bn-recal; SubnetValLoop: val_cfg bn_recal_images=0)'
        )

    if not isinstance(loader_cfg, dict):
        raise TypeError(
            'the BN re-estimation loader is built from a dataloader config '
            f'(train_dataloader); got {type(loader_cfg).__name__}; allowed: '
            'a dict'
        )
    cfg = copy.deepcopy(dict(loader_cfg))
    if not cfg.get('batch_size'):
        raise ValueError(
            f'train_dataloader.batch_size={cfg.get("batch_size")!r} is '
            'invalid for BN re-estimation; allowed: a positive integer '
            '(a batch_sampler is replaced by plain batches of batch_size)'
        )
    cfg['sampler'] = dict(type=DefaultSampler, shuffle=True, seed=seed)
    cfg.pop('batch_sampler', None)
    cfg['persistent_workers'] = False
    with seeded_rng(seed):
        dataloader = Runner.build_dataloader(cfg, seed=seed)
    return RecalLoader(dataloader, seed)


# -- the statistics --------------------------------------------------------
def _loader_capacity(dataloader) -> Tuple[int, int, int]:
    """(batch size, batches, images) of one pass of ``dataloader`` in this
    process."""
    inner = getattr(dataloader, 'dataloader', dataloader)  # RecalLoader
    batch_size = getattr(inner, 'batch_size', None)
    if batch_size is None:
        batch_sampler = getattr(inner, 'batch_sampler', None)
        batch_size = getattr(batch_sampler, 'batch_size', None)
    if not batch_size or not hasattr(dataloader, '__len__'):
        raise TypeError(
            'BN re-estimation needs a dataloader with a batch_size and a '
            f'length (every rank runs the same number of batches); got '
            f'{type(dataloader).__name__}'
        )
    batches = len(dataloader)
    images = batches * batch_size
    sampler = getattr(inner, 'sampler', None)
    if not getattr(inner, 'drop_last', False) and hasattr(sampler, '__len__'):
        images = min(images, len(sampler))
    return batch_size, batches, images


def new_sums(
    num_features: int, device: torch.device
) -> Dict[str, torch.Tensor]:
    """Zeroed float64 accumulators ``s1``, ``s2`` (per channel) and ``n``."""
    return dict(
        s1=torch.zeros(num_features, dtype=torch.float64, device=device),
        s2=torch.zeros(num_features, dtype=torch.float64, device=device),
        n=torch.zeros(1, dtype=torch.float64, device=device),
    )


def add_sums(acc: Dict[str, torch.Tensor], x: torch.Tensor) -> None:
    """Add a BN input ``x`` (N, C, ...) to ``acc``: per-channel sum and sum
    of squares in float64, and the element count per channel."""
    x = x.detach()
    dims = [0] + list(range(2, x.dim()))
    x = x.to(torch.float64)
    acc['s1'] += x.sum(dims)
    acc['s2'] += (x * x).sum(dims)
    acc['n'] += x.numel() // x.shape[1]


def stats_from_sums(
    s1: torch.Tensor, s2: torch.Tensor, n: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(mean, unbiased variance)`` of ``n`` values per channel from their
    float64 sum ``s1`` and sum of squares ``s2``."""
    mean = s1 / n
    var = ((s2 - s1 * mean) / max(n - 1, 1)).clamp_(min=0)
    return mean, var


@contextmanager
def recal_mode(model: nn.Module, bns: List[_BatchNorm]) -> Iterator[None]:
    """Within the context ``model`` runs in eval mode except ``bns``, which
    normalise with batch statistics as in training (``momentum=0``, so their
    running statistics are left alone); momentum, ``num_batches_tracked``
    and the model's mode are put back on exit."""
    was_training = model.training
    model.eval()
    saved = [
        (
            m.momentum,
            None
            if m.num_batches_tracked is None
            else m.num_batches_tracked.clone(),
        )
        for m in bns
    ]
    for m in bns:
        m.momentum = 0.0  # batch statistics, running ones left alone
        m.train()
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(bns, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
        model.train(was_training)


def check_recal_images(
    dataloader, num_images: int, device: Optional[torch.device] = None
) -> int:
    """How many batches each rank runs to re-estimate on ``num_images``
    images in total; refused (on every rank alike) when some rank's loader
    cannot provide them. Collective in a distributed run (one all-reduce):
    call it on every rank.

    Raises:
        ValueError: ``num_images`` exceeds the images the loaders provide
            (the message names ``bn_recal_images``, the number asked and the
            number available).
    """
    world_size = get_world_size()
    batch_size, batches, images = _loader_capacity(dataloader)
    # The smallest loader decides for all ranks, so all raise or none does.
    capacity = torch.tensor([batches, images], dtype=torch.float64)
    capacity = capacity.to(device or torch.device('cpu'))
    if world_size > 1:
        all_reduce(capacity, op='min')
    min_batches, min_images = (int(v) for v in capacity.tolist())
    available = min_images * world_size
    dataset = getattr(dataloader, 'dataset', None)
    dataset_size = len(dataset) if hasattr(dataset, '__len__') else '?'
    per_rank = math.ceil(num_images / (world_size * batch_size))
    if num_images > available or per_rank > min_batches:
        raise SettingError(
            'bn_recal_images',
            f'={num_images} is more than the training '
            f'images available for BN re-estimation: {available} '
            f'({min_images} per rank x {world_size} rank(s), '
            f'{min_batches} batches of {batch_size}; the dataset has '
            f'{dataset_size} images); allowed: '
            f'bn_recal_images <= {available}',
        )
    return per_rank


def _bn_owners(
    bns: List[_BatchNorm], elastic: Optional[ElasticDepth]
) -> Dict[_BatchNorm, Tuple[int, int]]:
    """The elastic block ``(stage, index)`` each BN layer sits in (BN
    layers outside the elastic blocks are absent)."""
    if elastic is None:
        return {}
    wanted = set(bns)
    return {
        m: (i, j)
        for i, stage in enumerate(elastic.stages)
        for j, block in enumerate(stage)
        for m in block.modules()
        if m in wanted
    }


def _member_sums(
    bns: List[_BatchNorm],
    members: List[Optional[Subnet]],
    elastic: Optional[ElasticDepth],
    device: torch.device,
) -> Tuple[Dict[tuple, dict], List[Dict[_BatchNorm, dict]]]:
    """The float64 accumulators: one per BN layer and prefix (a BN layer
    in an elastic block gets the same statistics in every member that
    shares the block's prefix, :func:`mmst.subnet.prefix.block_keys`), one
    per BN layer and member outside the blocks; and per member the
    accumulator each BN layer its forward reaches adds to. Created in the
    same order on every rank."""
    owners = _bn_owners(bns, elastic)
    sums: Dict[tuple, dict] = {}
    per_member = []
    for idx, subnet in enumerate(members):
        keys = block_keys(subnet) if subnet is not None else {}
        accs = {}
        for bn in bns:
            owner = owners.get(bn)
            key = ('member', idx) if owner is None else keys.get(owner)
            if key is None:
                continue  # in a block this member skips
            if (bn, key) not in sums:
                sums[(bn, key)] = new_sums(bn.num_features, device)
            accs[bn] = sums[(bn, key)]
        per_member.append(accs)
    return sums, per_member


@torch.no_grad()
def member_bn_stats(
    model: nn.Module,
    dataloader: Iterable,
    num_images: int,
    subnets: Sequence[Optional[Subnet]] = (None,),
    elastic: Optional[ElasticDepth] = None,
    on_batch: Optional[Callable[[int, int], None]] = None,
) -> Tuple[List[Dict[_BatchNorm, Tuple[torch.Tensor, torch.Tensor]]], int]:
    """The BN statistics each of ``subnets`` gets, re-estimated on
    ``num_images`` images (in total over all ranks) of ``dataloader``, in
    one pass over the batches; the model's own statistics are unchanged.

    Each BN layer that ``model.train()`` sets to training mode (so
    ``norm_eval`` / frozen stages are respected) normalises with batch
    statistics as in training, while a forward pre-hook sums its input per
    channel in float64: ``S1 = sum(x)``, ``S2 = sum(x ** 2)`` and the
    element count ``N``. The sums of all ranks are added (``all_reduce``,
    gloo or nccl), then ``mean = S1 / N`` and ``var = (S2 - S1 ** 2 / N) /
    (N - 1)`` (unbiased): the exact statistics of the union of the batches
    of all ranks, identical on every rank and equal (up to summation order)
    to one process fed the same batches. Everything else runs in eval mode;
    ``momentum`` and ``num_batches_tracked`` are left as they were.

    Members that share a prefix compute its blocks once per batch
    (:class:`mmst.subnet.prefix.PrefixCache`); the statistics equal those
    of each member re-estimated alone, bit for bit.

    Every rank runs the same number of batches (SyncBN has collectives in
    its forward): ``ceil(num_images / (world_size * batch_size))``, decided
    before the first batch; refused when the loader of some rank cannot
    provide that many images.

    Args:
        model (nn.Module): An upstream model (BaseModel with a data
            preprocessor, run with ``mode='tensor'``).
        dataloader (Iterable): This rank's loader, with ``batch_size`` and
            ``__len__``: normally a :class:`RecalLoader`
            (:func:`build_recal_loader`), which makes the images and their
            augmentations repeatable.
        num_images (int): Images in total over all ranks (rounded up to
            whole batches on every rank).
        subnets (Sequence): The members (``None``: the full network); with
            ``elastic=None``, one member: the network as it runs now (an
            elastic context may be active).
        elastic (ElasticDepth, optional): Activates each member.
        on_batch (callable, optional): ``on_batch(done, total)`` after each
            batch.

    Returns:
        tuple: ``(stats, images)``: per member, ``{bn: (running_mean,
        running_var)}`` (the BN layers' dtype) for the BN layers its
        forward reaches; the images used in total over all ranks. No BN
        layer trains (``norm_eval=True``, frozen stages, LayerNorm only):
        empty dicts and 0, no image read.

    Raises:
        ValueError: ``num_images`` is not positive, or exceeds the images
            the loaders provide (the message names ``bn_recal_images``, the
            number asked and the number available).
        TypeError: ``dataloader`` has no ``batch_size`` or length.
    """
    if num_images <= 0:
        raise ValueError(
            f'bn_recal_images={num_images!r} is invalid; '
            'allowed: a positive number of images'
        )
    members = list(subnets)
    if elastic is None and len(members) != 1:
        raise ValueError(
            f'{len(members)} members need elastic=ElasticDepth(...) to '
            'switch between them'
        )
    bns = _active_bns(model)
    if not bns:  # norm_eval / frozen / no BN: nothing to re-estimate
        return [{} for _ in members], 0
    if elastic is not None:
        members = [full_subnet(elastic) if s is None else s for s in members]
    device = bns[0].running_mean.device
    per_rank = check_recal_images(dataloader, num_images, device)
    sums, accs = _member_sums(bns, members, elastic, device)
    current: Dict[_BatchNorm, dict] = {}

    def hook(module: nn.Module, args) -> None:
        add_sums(current[module], args[0])

    handles = [m.register_forward_pre_hook(hook) for m in bns]
    copies = len(members) > 1  # members must not see each other's writes
    seen = size = 0

    def visit(idx: int, data) -> None:
        nonlocal current, size
        current = accs[idx]
        batch = model.data_preprocessor(
            copy.deepcopy(data) if copies else data, False
        )
        size = batch['inputs'].shape[0]
        model(batch['inputs'], batch.get('data_samples'), mode='tensor')

    def batch_done(done: int, total: int) -> None:
        nonlocal seen
        seen += size
        if on_batch is not None:
            on_batch(done, total)

    try:
        with recal_mode(model, bns), closing_iter(dataloader) as iterator:
            batches = itertools.islice(iterator, per_rank)
            member_passes(
                elastic, members, batches, visit, None, batch_done, per_rank
            )
    finally:
        for h in handles:
            h.remove()

    flat = torch.cat(
        [torch.tensor([seen], dtype=torch.float64, device=device)]
        + [torch.cat([a['s1'], a['s2'], a['n']]) for a in sums.values()]
    )
    if get_world_size() > 1:
        all_reduce(flat, op='sum')
    total = int(flat[0].item())
    if total < num_images:
        raise ValueError(
            f'bn_recal_images={num_images} images were asked for BN '
            f're-estimation, but the loaders yielded only {total} in '
            f'{per_rank} batch(es) per rank; the BN statistics are '
            'unchanged'
        )
    offset = 1
    for acc in sums.values():
        c = acc['s1'].numel()
        acc['s1'] = flat[offset : offset + c]
        acc['s2'] = flat[offset + c : offset + 2 * c]
        acc['n'] = flat[offset + 2 * c].item()
        offset += 2 * c + 1
    stats = []
    for member in accs:
        stats.append({})
        for bn, acc in member.items():
            if acc['n']:  # 0: not reached by this member's forward
                mean, var = stats_from_sums(acc['s1'], acc['s2'], acc['n'])
                stats[-1][bn] = (
                    mean.to(bn.running_mean.dtype),
                    var.to(bn.running_var.dtype),
                )
    return stats, total


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, dataloader: Iterable, num_images: int
) -> int:
    """Re-estimate the running statistics of ``model``'s BN layers, as it
    runs now (an elastic context may be active), on ``num_images`` images
    (in total over all ranks) of ``dataloader``: :func:`member_bn_stats`
    of the one network, written into its BN layers (those its forward does
    not reach, e.g. in blocks a sub-network skips, are left alone).

    Returns:
        int: The number of images used, in total over all ranks (0 when
        no BN layer trains: nothing is re-estimated and no image read).

    Raises:
        ValueError, TypeError: As :func:`member_bn_stats`.
    """
    (stats,), total = member_bn_stats(model, dataloader, num_images)
    for bn, (mean, var) in stats.items():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
    return total
