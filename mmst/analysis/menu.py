"""The depth menu: every sub-network of a trained elastic model measured on
the user's device, the Pareto frontier of metric vs cost, and the choice
of one member under a budget.

After ST / ST++ every member of the sub-network space is a usable model.
:func:`build_menu` evaluates each member of the space (or a given list) of
one or more checkpoints of one config: the task metric with BN statistics
re-estimated for the member (exactly as the loafing table and the export
do), parameters, FLOPs, and forward latency at the given batch sizes
(:mod:`mmst.analysis.latency`). The menu (a dict, also ``menu.json``) is
rewritten after every finished unit (one member of one checkpoint, or one
member's latency), so an interrupted sweep keeps what it finished and the
same call resumes it; a call with different settings is refused.

:func:`pareto_front` / :func:`frontier` mark the members no other member
beats on both the metric and the cost; :func:`choose_member` picks the best
member under ``max_latency_ms`` / ``max_flops`` / ``min_metric`` bounds;
:func:`write_outputs` writes ``menu.csv``, ``menu.md`` and ``menu.png``.
"""

import copy
import csv
import hashlib
import itertools
import json
import logging
import math
import os
import os.path as osp
import sys
import tempfile
import time
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

import torch

from mmst.fileio import write_json_atomic

from .cost import TensorOutputs
from .sweep import select_metric

#: ``menu.json`` layout version.
MENU_FORMAT = 'mmst-depth-menu/1'
#: Files a menu writes into its output folder.
MENU_FILES = ('menu.json', 'menu.csv', 'menu.md', 'menu.png')
#: Costs the frontier and the budget are taken over.
COSTS = ('latency', 'flops')
#: Runtimes whose latency the frontier and the budget may use.
RUNTIMES = ('eager', 'onnxruntime')
#: What the latency columns time.
LATENCY_WHAT = (
    "one model(inputs, data_samples, mode='tensor') call on a preprocessed "
    'batch (the first batch of the evaluation split repeated to the batch '
    'size), no data loading, preprocessing or post-processing; eval mode, '
    'no autograd; median and interquartile range of the timed repeats '
    'after the warm-up runs'
)
#: Default budget for caching the evaluation batches in memory.
DEFAULT_CACHE_MB = 4096


class MenuSettingsError(ValueError):
    """An existing ``menu.json`` was made with other settings."""


class BudgetError(ValueError):
    """No member satisfies the budget."""


# -- Pareto frontier and budget choice -------------------------------------
def pareto_front(points: Sequence[Tuple[float, float]]) -> List[bool]:
    """Which of ``points`` (cost, metric) are on the Pareto frontier.

    A point is on the frontier iff no other point has a cost at most its
    cost and a metric at least its metric with at least one of the two
    strictly better (lower cost or higher metric). Identical points do not
    dominate each other.

    Args:
        points (Sequence[tuple]): (cost, metric) pairs: lower cost and
            higher metric are better.

    Returns:
        list[bool]: One flag per point, in order.
    """
    flags = []
    for i, (cost, metric) in enumerate(points):
        dominated = any(
            c <= cost and m >= metric and (c < cost or m > metric)
            for j, (c, m) in enumerate(points)
            if j != i
        )
        flags.append(not dominated)
    return flags


def member_cost(
    member: dict,
    cost: str,
    batch_size: Optional[int] = None,
    runtime: str = 'eager',
) -> Optional[float]:
    """The ``cost`` of a menu member: ``'flops'`` (FLOPs of one image) or
    ``'latency'`` (median ms at ``batch_size`` of the ``runtime``:
    ``'eager'`` PyTorch or ``'onnxruntime'``); None when not measured.

    Raises:
        ValueError: ``cost`` or ``runtime`` is not allowed.
    """
    if runtime not in RUNTIMES:
        raise ValueError(
            f'--latency-runtime {runtime!r} is invalid; allowed: '
            + ' | '.join(RUNTIMES)
        )
    if cost == 'flops':
        return member.get('flops')
    if cost == 'latency':
        key = 'latency' if runtime == 'eager' else 'onnxruntime_latency'
        entry = (member.get(key) or {}).get(str(batch_size))
        return None if entry is None else entry['median_ms']
    raise ValueError(
        f'cost={cost!r} is invalid; allowed: ' + ' | '.join(COSTS)
    )


def member_metric(member: dict, label: str) -> Optional[float]:
    """The menu metric of ``member`` for checkpoint ``label`` (None when
    not evaluated yet)."""
    result = member.get('results', {}).get(label)
    return None if result is None else result['metric']


def frontier(
    menu: dict, label: str, cost: str, batch_size: Optional[int] = None
) -> List[str]:
    """Names of the members of checkpoint ``label`` on the Pareto frontier
    of the menu metric vs ``cost`` (see :func:`pareto_front`), cheapest
    first; members without the metric or the cost are left out."""
    rt = menu.get('latency_runtime', 'eager')
    rows = [
        (
            m['name'],
            member_cost(m, cost, batch_size, rt),
            member_metric(m, label),
        )
        for m in menu['members']
    ]
    rows = [r for r in rows if r[1] is not None and r[2] is not None]
    flags = pareto_front([(c, v) for _, c, v in rows])
    on = [r for r, f in zip(rows, flags) if f]
    return [name for name, _, _ in sorted(on, key=lambda r: (r[1], -r[2]))]


def _describe(
    member: dict, label: str, batch_size: int, metric: str, rt: str
) -> str:
    lat = member_cost(member, 'latency', batch_size, rt)
    flops = member.get('flops')
    return (
        f'{member["name"]} ({metric} {member_metric(member, label):.4g}, '
        f'{"" if rt == "eager" else "ONNX Runtime "}latency '
        f'{"-" if lat is None else f"{lat:.4g}"} ms at batch '
        f'{batch_size}, '
        f'{"-" if flops is None else f"{flops / 1e6:.4g}"} MFLOPs, '
        f'{member["params"] / 1e6:.4g} M params)'
    )


def choose_member(
    menu: dict,
    label: Optional[str] = None,
    max_latency_ms: Optional[float] = None,
    max_flops: Optional[float] = None,
    min_metric: Optional[float] = None,
    batch_size: Optional[int] = None,
) -> dict:
    """The best member of checkpoint ``label`` within the budget.

    Among the members satisfying every given bound (latency median at
    ``batch_size`` <= ``max_latency_ms``, FLOPs <= ``max_flops``, metric >=
    ``min_metric``), the one with the highest metric; ties go to the lower
    latency, then the lower FLOPs, then fewer parameters, then the order
    of the menu.

    Args:
        menu (dict): A complete menu (:func:`build_menu`).
        label (str, optional): Checkpoint label; default the last
            checkpoint of the menu.
        max_latency_ms (float, optional): Bound on the latency in ms.
        max_flops (float, optional): Bound on the FLOPs of one image.
        min_metric (float, optional): Bound on the metric (in the
            evaluator's unit, e.g. % for accuracy/top1).
        batch_size (int, optional): Latency batch size; default the menu's
            ``latency_batch_size``.

    Returns:
        dict: The chosen member (a row of ``menu['members']``).

    Raises:
        ValueError: ``label`` or ``batch_size`` is not in the menu.
        BudgetError: No member satisfies the bounds; the message names the
            cheapest member under each constrained cost (the best one under
            ``min_metric``) with its numbers.
    """
    labels = [c['label'] for c in menu['checkpoints']]
    label = labels[-1] if label is None else label
    if label not in labels:
        raise ValueError(
            f'--select {label!r} is invalid; allowed: ' + ' | '.join(labels)
        )
    sizes = menu['settings']['batch_sizes']
    batch_size = (
        menu['latency_batch_size'] if batch_size is None else (batch_size)
    )
    if batch_size not in sizes:
        raise ValueError(
            f'latency batch size {batch_size!r} was not measured; allowed: '
            + ' | '.join(map(str, sizes))
        )
    for key, bound in (
        ('--max-latency-ms', max_latency_ms),
        ('--max-flops', max_flops),
        ('--min-metric', min_metric),
    ):
        if bound is not None and not (
            isinstance(bound, (int, float)) and math.isfinite(bound)
        ):
            raise ValueError(
                f'{key}={bound!r} is invalid; allowed: a finite number'
            )
    rt = menu.get('latency_runtime', 'eager')
    members = [
        m for m in menu['members'] if member_metric(m, label) is not None
    ]
    if not members:
        raise ValueError(f'the menu has no evaluated member of {label!r}')

    def inf(value: Optional[float]) -> float:
        return math.inf if value is None else value

    def fits(m: dict) -> bool:
        lat = member_cost(m, 'latency', batch_size, rt)
        if max_latency_ms is not None and inf(lat) > max_latency_ms:
            return False
        if max_flops is not None and inf(m.get('flops')) > max_flops:
            return False
        return min_metric is None or member_metric(m, label) >= min_metric

    fitting = [(i, m) for i, m in enumerate(members) if fits(m)]
    if fitting:
        return min(
            fitting,
            key=lambda im: (
                -member_metric(im[1], label),
                inf(member_cost(im[1], 'latency', batch_size, rt)),
                inf(im[1].get('flops')),
                im[1]['params'],
                im[0],
            ),
        )[1]

    metric = menu['metric']
    bounds, nearest = [], []
    if max_latency_ms is not None:
        bounds.append(
            f'latency <= {max_latency_ms:g} ms at batch {batch_size}'
        )
        best = min(
            members,
            key=lambda m: (
                inf(member_cost(m, 'latency', batch_size, rt)),
                -member_metric(m, label),
            ),
        )
        nearest.append(
            'the fastest member is '
            + _describe(best, label, batch_size, metric, rt)
        )
    if max_flops is not None:
        bounds.append(f'FLOPs <= {max_flops:g}')
        best = min(
            members,
            key=lambda m: (inf(m.get('flops')), -member_metric(m, label)),
        )
        nearest.append(
            'the member with the fewest FLOPs is '
            + _describe(best, label, batch_size, metric, rt)
        )
    if min_metric is not None:
        bounds.append(f'{metric} >= {min_metric:g}')
        best = min(
            members,
            key=lambda m: (
                -member_metric(m, label),
                inf(member_cost(m, 'latency', batch_size, rt)),
            ),
        )
        nearest.append(
            f'the member with the highest {metric} is '
            + _describe(best, label, batch_size, metric, rt)
        )
    raise BudgetError(
        f'no member of {label!r} satisfies {" and ".join(bounds)}; '
        + '; '.join(nearest)
    )


# -- settings fingerprint and resume ---------------------------------------
def file_sha256(path: str, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def _stable(obj: Any) -> Any:
    """A JSON-able, run-independent form of a config value."""
    if isinstance(obj, dict):
        return {str(k): _stable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_stable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, type) or callable(obj):
        module = getattr(obj, '__module__', '')
        name = getattr(obj, '__qualname__', type(obj).__name__)
        return f'{module}.{name}'
    return repr(obj)


def config_sha256(cfg) -> str:
    """SHA-256 of a (merged) config's content: changes with the config
    file, its ``_base_`` files and ``--cfg-options``."""
    text = json.dumps(_stable(cfg.to_dict()), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def settings_differences(old: dict, new: dict) -> List[str]:
    """``'key: OLD (menu.json) vs NEW (now)'`` for every differing key."""
    keys = sorted(set(old) | set(new))
    return [
        f'{k}: {old.get(k)!r} (menu.json) vs {new.get(k)!r} (now)'
        for k in keys
        if old.get(k) != new.get(k)
    ]


def load_existing(
    out_dir: str, settings: dict, force: bool = False
) -> Optional[dict]:
    """The menu in ``out_dir`` to resume, if its settings equal
    ``settings``; None when there is none (or ``force``, or it has other
    settings but no finished unit: nothing is lost by starting again).

    Raises:
        MenuSettingsError: ``out_dir/menu.json`` exists with other
            settings and finished units, or other menu files exist
            without a ``menu.json`` (and not ``force``).
    """
    path = osp.join(out_dir, 'menu.json')
    if force:
        return None
    if not osp.exists(path):
        others = [
            f for f in MENU_FILES[1:] if osp.exists(osp.join(out_dir, f))
        ]
        if others:
            raise MenuSettingsError(
                f'{out_dir} holds {", ".join(others)} but no menu.json; pass '
                '--force to overwrite or choose another --out-dir'
            )
        return None
    with open(path) as f:
        try:
            menu = json.load(f)
        except json.JSONDecodeError as e:
            raise MenuSettingsError(
                f'{path} is not a menu ({e}); pass --force to overwrite or '
                'choose another --out-dir'
            ) from None
    if menu.get('format') != MENU_FORMAT:
        raise MenuSettingsError(
            f'{path} has format={menu.get("format")!r}, not {MENU_FORMAT!r}; '
            'pass --force to overwrite or choose another --out-dir'
        )
    diffs = settings_differences(menu.get('settings', {}), settings)
    finished = any(
        m.get('latency') is not None or m.get('results')
        for m in menu.get('members', [])
    )
    if diffs and not finished:  # nothing to lose: e.g. a run that crashed
        logging.getLogger(__name__).warning(
            '%s holds no finished unit; starting again with the new '
            'settings (%s)',
            path,
            '; '.join(diffs),
        )
        return None
    if diffs:
        raise MenuSettingsError(
            f'{path} was made with other settings, so it cannot be '
            'resumed: ' + '; '.join(diffs) + '. Pass --force to restart '
            'it or choose another --out-dir'
        )
    return menu


# -- shared batches --------------------------------------------------------
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
        from mmst.engine.bn_recal import _batch_len

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
    from mmst.engine.bn_recal import closing_iter

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
    batch_size = getattr(loader, 'batch_size', None) or _first_len(batches)
    return CachedBatches(batches, loader.dataset, batch_size)


def _first_len(batches: list) -> int:
    from mmst.engine.bn_recal import _batch_len

    return _batch_len(batches[0]) if batches else 1


# -- the sweep -------------------------------------------------------------
def default_out_dir(config: str) -> str:
    """``work_dirs/depth_menu/<config name>``."""
    return osp.join(
        'work_dirs', 'depth_menu', osp.splitext(osp.basename(config))[0]
    )


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc='depth menu',
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not enabled,
    )


def _first_batch(loader) -> dict:
    from mmst.engine.bn_recal import closing_iter

    with closing_iter(loader) as iterator:
        return copy.deepcopy(next(iterator))


def build_menu(
    config: str,
    checkpoints: Sequence[str],
    labels: Optional[Sequence[str]] = None,
    subnets: Sequence = ('all',),
    space: Optional[str] = None,
    bn_recal_images: int = 2000,
    split: str = 'val',
    metric: Optional[str] = None,
    max_images: Optional[int] = None,
    seed: int = 0,
    batch_sizes: Sequence[int] = (1,),
    latency_batch_size: Optional[int] = None,
    latency_runtime: str = 'eager',
    warmup: int = 5,
    repeats: int = 30,
    device: str = 'cpu',
    threads: Optional[int] = None,
    ort: Optional[bool] = None,
    cfg_options: Optional[dict] = None,
    out_dir: Optional[str] = None,
    force: bool = False,
    progress: bool = True,
    cache_mb: float = DEFAULT_CACHE_MB,
    on_unit: Optional[Callable[[dict, dict], None]] = None,
    strict: bool = True,
) -> dict:
    """Measure every member and return the menu (also in
    ``out_dir/menu.json``, rewritten after every finished unit).

    Units of work: the metric of one member for one checkpoint (BN
    statistics re-estimated for the member on ``bn_recal_images`` training
    images, as :func:`mmst.engine.evaluate_subnet`; skipped when the model
    has no BN layer in training mode), and the latency of one member (the
    architecture is shared by the checkpoints, so it is timed once). A
    menu already in ``out_dir`` with the same settings is resumed: its
    finished units are kept, the others run.

    The evaluation batches (decoded and transformed once, as the split's
    dataloader yields them, in its order) and the re-estimation batches
    (the first ``ceil(bn_recal_images / batch_size)`` batches of the seeded
    loader of :func:`mmst.analysis.build_recal_loader`, which yields the
    same batches on every iteration) are kept in memory and reused for
    every member and checkpoint: the numbers equal those of the loaders
    themselves. Evaluation batches whose inputs would exceed ``cache_mb``
    MiB are read from the loader for every member instead.

    Args:
        config (str): The config the checkpoints were trained with.
        checkpoints (Sequence[str]): One or more checkpoints of ``config``.
        labels (Sequence[str], optional): One distinct name per checkpoint
            (default: folder/file names).
        subnets (Sequence): Specs (``'all'``, ``'smallest'``, ``'largest'``,
            ``'full'``, depth lists or ``'1,2,3'`` strings).
        space (str, optional): Space preset overriding the model's space.
        bn_recal_images (int): Images per re-estimation (0: stored
            statistics).
        split (str): ``'val'`` or ``'test'``.
        metric (str, optional): Metric key (default: the evaluator's
            first).
        max_images (int, optional): Evaluate on the first N images.
        seed (int): Seed of the re-estimation images and augmentations.
        batch_sizes (Sequence[int]): Latency batch sizes.
        latency_batch_size (int, optional): The batch size whose latency
            the frontier and the budget use (default: the first).
        latency_runtime (str): Whose latency they use: ``'eager'``
            PyTorch or ``'onnxruntime'`` (needs ``ort``).
        warmup (int): Untimed runs before the timed ones.
        repeats (int): Timed runs (median and IQR reported).
        device (str): ``'cpu'`` or ``'cuda'``: where evaluation and latency
            run.
        threads (int, optional): ``torch.set_num_threads`` for the run
            (None: leave torch's setting); recorded.
        ort (bool, optional): Also time ONNX Runtime (None: when
            onnxruntime is installed).
        cfg_options (dict, optional): Config overrides.
        out_dir (str, optional): Output folder (default
            ``work_dirs/depth_menu/<config name>``).
        force (bool): Restart instead of resuming / refusing.
        progress (bool): Show a tqdm bar on stderr.
        cache_mb (float): Memory budget of the cached evaluation batches.
        on_unit (callable, optional): Called as ``on_unit(menu, unit)``
            after each finished unit has been written.
        strict (bool): Refuse a checkpoint with a missing, unexpected or
            mis-shaped key (:func:`mmst.analysis.load_weights`). Defaults
            to True; False (recorded in the settings as ``strict=False``)
            loads the keys that fit and logs the others.

    Returns:
        dict: The menu: ``settings``, ``machine``, ``metric``,
        ``checkpoints``, ``members`` (``name``, ``subnet`` (blocks kept per
        stage), ``blocks``, ``params``, ``flops``, ``latency`` {batch size:
        {``median_ms``, ``iqr_ms``, ...}}, ``onnxruntime_latency``,
        ``results`` {label: {``metric``, ``metrics``,
        ``recal_images_used``}}), ``frontiers``, ``complete``, ``timings``.

    Raises:
        MenuSettingsError: ``out_dir`` holds a menu made with other
            settings (names the differing ones).
        ValueError: Invalid arguments (named with the allowed values).
    """
    from mmst.engine import run_members
    from mmst.engine.bn_recal import check_recal_images
    from mmst.subnet import format_subnet, parse_subnet_specs

    from . import latency as lat
    from .cost import FLOPS_CONVENTION, count_flops, count_params
    from .runner import (
        build_recal_loader,
        check_bn_recal_images,
        load_weights,
        quiet_logs,
    )
    from .sweep import TaskMetric, check_checkpoints, open_sweep

    t_start = time.perf_counter()
    checkpoints, labels = check_checkpoints(checkpoints, labels)
    batch_sizes = [int(b) for b in batch_sizes]
    if not batch_sizes or any(b < 1 for b in batch_sizes):
        raise ValueError(
            f'--batch-sizes {batch_sizes} is invalid; allowed: integers >= 1'
        )
    if len(set(batch_sizes)) < len(batch_sizes):
        raise ValueError(
            f'--batch-sizes {batch_sizes} is invalid; allowed: distinct sizes'
        )
    if latency_batch_size is None:
        latency_batch_size = batch_sizes[0]
    if latency_batch_size not in batch_sizes:
        raise ValueError(
            f'--latency-batch-size {latency_batch_size} is invalid; allowed: '
            'one of --batch-sizes ' + ' | '.join(map(str, batch_sizes))
        )
    check_bn_recal_images(bn_recal_images)
    if warmup < 0 or repeats < 1:
        raise ValueError(
            f'--warmup {warmup} / --repeats {repeats} is invalid; allowed: '
            'warmup >= 0, repeats >= 1'
        )
    if threads is not None and threads < 1:
        raise ValueError(f'--threads {threads} is invalid; allowed: >= 1')
    torch_device = lat.resolve_device(device)
    if ort is None:
        ort = lat.onnxruntime_available() and torch_device.type == 'cpu'
    elif ort and not lat.onnxruntime_available():
        raise ValueError(
            '--onnxruntime needs the onnx and onnxruntime packages (pip '
            'install onnx onnxruntime); they are not installed'
        )
    if latency_runtime not in RUNTIMES:
        raise ValueError(
            f'--latency-runtime {latency_runtime!r} is invalid; allowed: '
            + ' | '.join(RUNTIMES)
        )
    if latency_runtime == 'onnxruntime' and not ort:
        raise ValueError(
            '--latency-runtime onnxruntime needs the ONNX Runtime latency '
            '(--onnxruntime: onnx and onnxruntime installed, device cpu)'
        )
    specs = parse_subnet_specs(subnets)
    out_dir = out_dir or default_out_dir(config)
    if threads is not None:
        torch.set_num_threads(threads)

    machine = lat.machine_info(torch_device)
    timings = dict(cache_s=0.0, recal_s=0.0, eval_s=0.0, latency_s=0.0)

    with open_sweep(
        config,
        split,
        max_images,
        cfg_options,
        space,
        bn_recal_images,
        seed,
        recal_loader=False,
    ) as sweep:
        cfg, runner, model, arch = (
            sweep.cfg,
            sweep.runner,
            sweep.model,
            sweep.arch,
        )
        elastic, member_space = sweep.elastic, sweep.space
        members_sub = sweep.members(specs, 'subnets')
        settings = dict(
            config=osp.abspath(config),
            config_sha256=config_sha256(cfg),
            cfg_options=_stable(dict(cfg_options or {})),
            checkpoints=[
                dict(
                    label=label,
                    path=osp.abspath(path),
                    size=osp.getsize(path),
                    sha256=file_sha256(path),
                )
                for label, path in zip(labels, checkpoints)
            ],
            subnets=[[len(s) for s in sub] for sub in members_sub],
            space=space,
            split=split,
            max_images=max_images,
            metric=metric,
            bn_recal_images=bn_recal_images,
            seed=seed,
            batch_sizes=batch_sizes,
            warmup=warmup,
            repeats=repeats,
            device=str(torch_device),
            threads=torch.get_num_threads(),
            onnxruntime=bool(ort),
            machine=machine['cpu']
            if torch_device.type == 'cpu'
            else machine.get('gpu'),
            # recorded only when non-strict: strict menus keep their settings
            **({} if strict else dict(strict=False)),
        )
        menu = load_existing(out_dir, settings, force)
        resumed = menu is not None
        if menu is None:
            menu = dict(
                format=MENU_FORMAT,
                settings=settings,
                machine=machine,
                config=osp.abspath(config),
                metric=None,
                flops_convention=FLOPS_CONVENTION,
                latency_batch_size=latency_batch_size,
                latency_what=LATENCY_WHAT,
                checkpoints=[
                    dict(label=label, path=osp.abspath(path))
                    for label, path in zip(labels, checkpoints)
                ],
                space=dict(
                    stage_depths=member_space.stage_depths,
                    depth_choices=member_space.depth_choices,
                    preset=space,
                ),
                members=[],
                complete=False,
                runs=[],
            )
        menu['latency_batch_size'] = latency_batch_size
        menu['latency_runtime'] = latency_runtime
        menu.pop('choice', None)  # a budget choice belongs to one call
        json_path = osp.join(out_dir, 'menu.json')

        model.to(torch_device)
        finished = bool(menu['members']) and all(
            m['latency'] is not None
            and all(label in m['results'] for label in labels)
            for m in menu['members']
        )
        prepared = None
        recal_images = sweep.recal_images
        has_bn = sweep.has_bn
        if not finished:  # a finished menu needs no data
            t0 = time.perf_counter()
            loader = sweep.loader
            with quiet_logs():
                cached = cache_loader(loader, cache_mb)
            if cached is not None:
                sweep.loader = cached
            first = _first_batch(sweep.loader)
            if recal_images:
                recal_source = build_recal_loader(cfg, seed)
                per_rank = check_recal_images(recal_source, recal_images)
                sweep.recal = cache_loader(recal_source, math.inf, per_rank)
            timings['cache_s'] += time.perf_counter() - t0
            with torch.no_grad():
                prepared = model.data_preprocessor(copy.deepcopy(first), False)
            menu.update(
                eval_images=len(loader.dataset),
                input_shape=list(prepared['inputs'].shape[1:]),
                bn_stats='re-estimated'
                if recal_images
                else (
                    'stored'
                    if has_bn
                    else 'stored (no BN layer is trained: norm_eval, '
                    'frozen stages or no BN)'
                ),
                eval_cache=cached is not None,
            )
        input_shape = menu['input_shape']

        # member rows: names, sizes, FLOPs (cheap, once)
        rows = {m['name']: m for m in menu['members']}
        ordered = []
        flops_of = None
        for sub in members_sub:
            name = format_subnet(sub)
            row = rows.get(name)
            if row is None:
                if flops_of is None:
                    flops_of, menu['flops_scope'] = _flops_counter(
                        arch, input_shape, elastic, count_flops
                    )
                depths = [len(s) for s in sub]
                row = dict(
                    name=name,
                    subnet=depths,
                    blocks=sum(depths),
                    params=count_params(arch, elastic, sub),
                    flops=flops_of(sub),
                    latency=None,
                    onnxruntime_latency=None,
                    results={},
                )
            ordered.append((sub, row))
        menu['members'] = [row for _, row in ordered]

        todo_eval = [
            (label, path, sub, row)
            for label, path in zip(labels, checkpoints)
            for sub, row in ordered
            if label not in row['results']
        ]
        todo_lat = [
            (sub, row) for sub, row in ordered if row['latency'] is None
        ]
        run_info = dict(
            started=time.strftime('%Y-%m-%dT%H:%M:%S%z'),
            resumed=resumed,
            units=len(todo_eval) + len(todo_lat),
        )
        menu['runs'].append(run_info)
        write_json_atomic(menu, json_path)

        def finish(unit: dict) -> None:
            run_info['timings'] = {k: round(v, 3) for k, v in timings.items()}
            write_json_atomic(menu, json_path)
            bar.update(1)
            if on_unit is not None:
                on_unit(menu, unit)

        bar = _progress(len(todo_eval) + len(todo_lat), progress)
        try:
            for label, path in zip(labels, checkpoints):
                todo = [(s, r) for lb, _, s, r in todo_eval if lb == label]
                if not todo:
                    continue
                bar.set_postfix_str(f'{label}: {len(todo)} member(s)')
                with quiet_logs():
                    load_weights(runner, path, strict)
                model.to(torch_device)
                subs = [sub for sub, _ in todo]
                count = len(todo)

                def show(what, members=count, label=label):
                    def on_batch(done: int, total: int) -> None:
                        bar.set_postfix_str(
                            f'{label}: {members} member(s), {what} batch '
                            f'{done}/{total}'
                        )

                    return on_batch

                t0 = time.perf_counter()
                stats, used = sweep.bn_stats(subs, show('BN re-estimation'))
                t1 = time.perf_counter()
                measure = TaskMetric()
                measure.begin(sweep, len(subs))
                run_members(
                    model,
                    elastic,
                    subs,
                    sweep.loader,
                    measure.process,
                    stats,
                    show('evaluation'),
                )
                results = measure.results()
                timings['recal_s'] += t1 - t0
                timings['eval_s'] += time.perf_counter() - t1
                for (_, row), metrics in zip(todo, results):
                    key = menu['metric'] or select_metric(metrics, metric)
                    if key not in metrics:
                        raise ValueError(
                            f"metric {key!r} is not among the evaluator's "
                            f'metrics: {" | ".join(metrics)}'
                        )
                    menu['metric'] = key
                    row['results'][label] = dict(
                        metric=metrics[key],
                        metrics=metrics,
                        recal_images_used=used,
                    )
                    finish(
                        dict(kind='metric', label=label, member=row['name'])
                    )

            ort_ok = bool(ort) and bool(todo_lat)
            if ort_ok:
                from .export import check_onnx_task

                try:
                    check_onnx_task(arch)
                except ValueError as e:  # e.g. detectors: one warning
                    logging.getLogger(__name__).warning(
                        'no ONNX Runtime latency: %s', e
                    )
                    ort_ok = False
            for sub, row in todo_lat:
                bar.set_postfix_str(f'latency {row["name"]}')
                t0 = time.perf_counter()
                entry = {}
                ort_entry = {} if ort else None
                with torch.no_grad(), tempfile.TemporaryDirectory(
                    prefix='mmst_menu_onnx_'
                ) as onnx_dir:
                    inputs = prepared['inputs'].to(torch_device)
                    samples = prepared.get('data_samples')
                    with elastic.activate(sub):
                        onnx_file = None
                        if ort_ok:
                            onnx_file = _export_for_ort(
                                arch, input_shape, onnx_dir
                            )
                        for bs in batch_sizes:
                            x, s = lat.tile_batch(inputs, samples, bs)
                            entry[str(bs)] = lat.eager_latency(
                                arch, x, s, warmup, repeats
                            )
                            if onnx_file is not None:
                                ort_entry[str(bs)] = lat.onnxruntime_latency(
                                    onnx_file, x, warmup, repeats, threads
                                )
                row['latency'] = entry
                row['onnxruntime_latency'] = ort_entry
                timings['latency_s'] += time.perf_counter() - t0
                finish(dict(kind='latency', member=row['name']))
        finally:
            bar.close()

    menu['complete'] = all(
        row['latency'] is not None
        and all(label in row['results'] for label in labels)
        for row in menu['members']
    )
    menu['frontiers'] = {
        label: dict(
            latency=frontier(menu, label, 'latency', latency_batch_size),
            flops=frontier(menu, label, 'flops'),
        )
        for label in labels
    }
    timings['total_s'] = time.perf_counter() - t_start
    run_info['timings'] = {k: round(v, 3) for k, v in timings.items()}
    write_json_atomic(menu, json_path)
    return menu


def _flops_counter(
    arch: torch.nn.Module,
    input_shape: Sequence[int],
    elastic,
    count_flops: Callable,
) -> Tuple[Callable, str]:
    """How the menu counts FLOPs: of the whole ``mode='tensor'`` forward
    (scope ``'model'``) where mmengine can trace it, else (two-stage
    detectors, whose forward needs data samples) of ``extract_feat``
    (scope ``'backbone+neck'``; the depth changes only the backbone), else
    not at all (scope ``None``)."""
    if count_flops(arch, input_shape, elastic, None) is not None:
        return (
            lambda sub: count_flops(arch, input_shape, elastic, sub),
            'model',
        )
    if hasattr(arch, 'extract_feat'):
        feats = TensorOutputs(arch, flatten=False, features=True)
        if count_flops(feats, input_shape, elastic, None) is not None:
            return (
                lambda sub: count_flops(feats, input_shape, elastic, sub),
                'backbone+neck',
            )
    return (lambda sub: None), None


def _export_for_ort(
    arch: torch.nn.Module, input_shape: Sequence[int], folder: str
) -> Optional[str]:
    """The active sub-network of ``arch`` as an ONNX file in ``folder``
    (:func:`mmst.analysis.export.export_onnx`, dynamic batch axis); None,
    with a warning, when the model does not export (e.g. detectors)."""
    from .export import export_onnx

    path = osp.join(folder, 'member.onnx')
    try:
        export_onnx(arch, path, input_shape=input_shape, force=True)
    except Exception as e:  # ORT latency is an extra column: best effort
        logging.getLogger(__name__).warning(
            'cannot export to ONNX (%s: %s); no ONNX Runtime latency',
            type(e).__name__,
            e,
        )
        return None
    return path


def export_member(
    menu: dict,
    label: str,
    member: dict,
    out_dir: str,
    onnx: bool = False,
    force: bool = False,
    cfg_options: Optional[dict] = None,
) -> dict:
    """Write ``member`` of checkpoint ``label`` as a standalone config +
    checkpoint (and ONNX file) with :func:`mmst.analysis.export.
    export_subnet`, with the menu's config, ``cfg_options``, BN
    re-estimation images and seed, so ``tools/test.py`` on the files gives
    the menu's metric (same split and images).

    ``cfg_options``: the overrides the menu was built with, as given (the
    menu's JSON copy has tuples turned into lists; it is used when None).

    Returns:
        dict: :func:`mmst.analysis.export.export_subnet`'s summary.

    Raises:
        FileExistsError: Outputs exist and ``force`` is False.
        CheckpointError: The checkpoint is unreadable or no longer fits
            (loaded as strictly as the menu was built).
    """
    from .export import export_subnet

    st = menu['settings']
    path = next(c['path'] for c in st['checkpoints'] if c['label'] == label)
    return export_subnet(
        st['config'],
        path,
        list(member['subnet']),
        out_dir,
        # the menu re-estimated only where BN layers are trained (else the
        # stored statistics, which a re-estimation would leave unchanged)
        bn_recal_images=st['bn_recal_images']
        if menu.get('bn_stats') == 're-estimated'
        else 0,
        seed=st['seed'],
        force=force,
        cfg_options=cfg_options
        if cfg_options is not None
        else (st['cfg_options'] or None),
        onnx=onnx,
        strict=st.get('strict', True),
    )


# -- outputs ---------------------------------------------------------------
def _flops_unit(menu: dict) -> Tuple[str, float]:
    flops = [m['flops'] for m in menu['members'] if m.get('flops')]
    if flops and max(flops) >= 1e9:
        return 'GFLOPs', 1e9
    return 'MFLOPs', 1e6


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def _labels(menu: dict) -> List[str]:
    return [c['label'] for c in menu['checkpoints']]


def write_csv(menu: dict, path: str) -> None:
    """One row per member: sizes, latency (median and IQR per batch size,
    ONNX Runtime too when measured), the metric and the frontier flags per
    checkpoint."""
    labels = _labels(menu)
    sizes = menu['settings']['batch_sizes']
    ort = menu['settings'].get('onnxruntime')
    fronts = menu.get('frontiers', {})
    header = ['member', 'subnet', 'blocks', 'params', 'flops']
    for bs in sizes:
        header += [f'latency_ms_b{bs}', f'latency_iqr_ms_b{bs}']
        if ort:
            header += [f'ort_latency_ms_b{bs}']
    for label in labels:
        header += [
            f'{label} {menu["metric"]}',
            f'{label} pareto_latency',
            f'{label} pareto_flops',
        ]
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for m in menu['members']:
            row = [
                m['name'],
                ' '.join(map(str, m['subnet'])),
                m['blocks'],
                m['params'],
                '' if m['flops'] is None else m['flops'],
            ]
            for bs in sizes:
                entry = (m.get('latency') or {}).get(str(bs))
                row += [
                    '' if entry is None else entry['median_ms'],
                    '' if entry is None else entry['iqr_ms'],
                ]
                if ort:
                    o = (m.get('onnxruntime_latency') or {}).get(str(bs))
                    row += ['' if o is None else o['median_ms']]
            for label in labels:
                value = member_metric(m, label)
                front = fronts.get(label, {})
                row += [
                    '' if value is None else value,
                    int(m['name'] in front.get('latency', [])),
                    int(m['name'] in front.get('flops', [])),
                ]
            writer.writerow(row)


def markdown_table(menu: dict, chosen: Optional[dict] = None) -> str:
    """The menu as a Markdown table (members by latency at the menu's
    latency batch size; frontier members marked), with a header naming the
    settings and the machine."""
    labels = _labels(menu)
    sizes = menu['settings']['batch_sizes']
    unit, scale = _flops_unit(menu)
    lb = menu['latency_batch_size']
    rt = menu.get('latency_runtime', 'eager')
    fronts = menu.get('frontiers', {})
    st = menu['settings']
    machine = menu['machine']
    recal = st['bn_recal_images']
    lines = [
        f'Depth menu of `{osp.basename(menu["config"])}`: {menu["metric"]} '
        f'on the {st["split"]} set ({menu.get("eval_images")} images), '
        + (
            f'each member with BN statistics re-estimated on {recal} '
            'training images'
            if menu.get('bn_stats') == 're-estimated'
            else f'BN statistics: {menu.get("bn_stats")}'
        )
        + f'; latency: median (IQR) of {st["repeats"]} runs after '
        f'{st["warmup"]} warm-up runs on {st["device"]} '
        f'({machine.get("gpu") or machine["cpu"]}, {st["threads"]} '
        f'thread(s), torch {machine["torch"]}). '
        + (
            f'FLOPs: {menu["flops_scope"]} only. '
            if menu.get('flops_scope') not in (None, 'model')
            else ''
        )
        + '`*`: on the Pareto '
        f'frontier of {menu["metric"]} vs '
        f'{"ONNX Runtime " if rt == "onnxruntime" else ""}latency at batch '
        f'{lb}; `f`: vs '
        'FLOPs.',
        '',
    ]
    ort = any(m.get('onnxruntime_latency') for m in menu['members'])
    header = f'| member | blocks | params (M) | {unit} |'
    sep = '|---|---|---|---|'
    for bs in sizes:
        header += f' ms (b={bs}) |'
        sep += '---|'
    if ort:
        for bs in sizes:
            header += f' ORT ms (b={bs}) |'
            sep += '---|'
    for label in labels:
        header += f' {label} |'
        sep += '---|'
    lines += [header, sep]

    def key(m):
        cost = member_cost(m, 'latency', lb, rt)
        return (math.inf if cost is None else cost, m['blocks'])

    for m in sorted(menu['members'], key=key):
        flops = None if m['flops'] is None else m['flops'] / scale
        cells = [
            f'`{m["name"]}`'
            + (' (chosen)' if chosen is not None and chosen is m else ''),
            str(m['blocks']),
            f'{m["params"] / 1e6:.3f}',
            _fmt(flops),
        ]
        for bs in sizes:
            entry = (m.get('latency') or {}).get(str(bs))
            cells.append(
                '-'
                if entry is None
                else f'{entry["median_ms"]:.3g} ({entry["iqr_ms"]:.2g})'
            )
        if ort:
            for bs in sizes:
                entry = (m.get('onnxruntime_latency') or {}).get(str(bs))
                cells.append(
                    '-'
                    if entry is None
                    else f'{entry["median_ms"]:.3g} ({entry["iqr_ms"]:.2g})'
                )
        for label in labels:
            value = member_metric(m, label)
            front = fronts.get(label, {})
            marks = ('*' if m['name'] in front.get('latency', []) else '') + (
                'f' if m['name'] in front.get('flops', []) else ''
            )
            cells.append(_fmt(value) + (f' {marks}' if marks else ''))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def plot(
    menu: dict,
    path: str,
    title: Optional[str] = None,
    chosen: Optional[Tuple[str, str]] = None,
) -> None:
    """Metric vs latency (at the menu's latency batch size) and vs FLOPs,
    one series per checkpoint, each frontier drawn as a step line;
    ``chosen`` = (label, member name) is ringed."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = _labels(menu)
    unit, scale = _flops_unit(menu)
    lb = menu['latency_batch_size']
    rt = menu.get('latency_runtime', 'eager')
    runtime = 'ONNX Runtime' if rt == 'onnxruntime' else 'PyTorch'
    device = menu['settings']['device']
    panels = [
        (
            'latency',
            f'{runtime} latency (ms, batch {lb}, {device})',
            1.0,
        )
    ]
    if all(m.get('flops') is not None for m in menu['members']):
        panels.append(('flops', unit, scale))
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.6 * len(panels), 4.4), squeeze=False
    )
    colors = ['tab:blue', 'tab:red', 'tab:green', 'tab:purple', 'tab:orange']
    markers = ['o', 's', '^', 'D', 'v']
    for ax, (cost, xlabel, sc) in zip(axes[0], panels):
        for i, label in enumerate(labels):
            color = colors[i % len(colors)]
            pts = [
                (
                    member_cost(m, cost, lb, rt),
                    member_metric(m, label),
                    m['name'],
                )
                for m in menu['members']
            ]
            pts = [p for p in pts if p[0] is not None and p[1] is not None]
            if not pts:
                continue
            ax.scatter(
                [p[0] / sc for p in pts],
                [p[1] for p in pts],
                color=color,
                marker=markers[i % len(markers)],
                alpha=0.35,
                s=22,
            )
            front = set(frontier(menu, label, cost, lb))
            fp = sorted((p for p in pts if p[2] in front), key=lambda p: p[0])
            ax.step(
                [p[0] / sc for p in fp],
                [p[1] for p in fp],
                where='post',
                color=color,
                linewidth=1.5,
            )
            ax.scatter(
                [p[0] / sc for p in fp],
                [p[1] for p in fp],
                color=color,
                marker=markers[i % len(markers)],
                s=34,
                edgecolors='black',
                linewidths=0.5,
                label=f'{label} (frontier: {len(fp)} of {len(pts)})',
            )
            if chosen is not None and chosen[0] == label:
                for p in pts:
                    if p[2] == chosen[1]:
                        ax.scatter(
                            [p[0] / sc],
                            [p[1]],
                            s=200,
                            facecolors='none',
                            edgecolors='black',
                            linewidths=1.5,
                            label=f'chosen: {label} {p[2]}',
                        )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(menu['metric'])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc='lower right')
    fig.suptitle(
        title or f'{osp.basename(menu["config"])}: depth menu', fontsize=10
    )
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_outputs(
    menu: dict,
    out_dir: str,
    plot_path: Optional[str] = None,
    title: Optional[str] = None,
    chosen: Optional[Tuple[str, dict]] = None,
) -> Dict[str, str]:
    """Write ``menu.json``, ``menu.csv``, ``menu.md`` and the plot (default
    ``out_dir/menu.png``); ``chosen`` = (label, member) is marked. Returns
    the paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = dict(
        json=osp.join(out_dir, 'menu.json'),
        csv=osp.join(out_dir, 'menu.csv'),
        md=osp.join(out_dir, 'menu.md'),
        png=plot_path or osp.join(out_dir, 'menu.png'),
    )
    write_json_atomic(menu, paths['json'])
    write_csv(menu, paths['csv'])
    with open(paths['md'], 'w') as f:
        f.write(markdown_table(menu, chosen[1] if chosen else None))
    plot(
        menu,
        paths['png'],
        title,
        (chosen[0], chosen[1]['name']) if chosen else None,
    )
    return paths
