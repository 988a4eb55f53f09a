"""The sweep of a depth menu (:func:`build_menu`: data, member rows,
metric and latency units, frontiers) and :func:`export_member`."""

import copy
import math
import time
from typing import Callable, List, Optional

import torch

from mmst.engine.bn_recal import check_recal_images, closing_iter
from mmst.subnet import format_subnet

from ..cost import count_params, machine_info
from ..sweep import Sweep, build_recal_loader, open_sweep, quiet_logs
from . import measure
from .outputs import frontier
from .settings import MenuSettings, fingerprint, load_existing, new_menu

UNTRAINED_BN = (
    'stored (no BN layer is trained: norm_eval, frozen stages or no BN)'
)


def _complete(menu: dict, labels: List[str]) -> bool:
    return all(
        m['latency'] is not None and all(lb in m['results'] for lb in labels)
        for m in menu['members']
    )


def build_menu(
    config, checkpoints=(), *, on_unit: Optional[Callable] = None, **options
) -> dict:
    """Measure every member of ``config`` (a config file, with
    ``checkpoints`` and the other :class:`MenuSettings` as ``options``, or
    the settings) and return the menu, also in ``out_dir/menu.json``,
    rewritten after every finished unit (then ``on_unit(menu, unit)``):
    the metric of one member for one checkpoint (BN statistics
    re-estimated as :func:`mmst.engine.evaluate_subnet` does), the latency
    of one member. A menu in ``out_dir`` with the same settings is resumed.
    The batches are decoded once (:func:`cache_loader`, up to ``cache_mb``).

    Returns:
        dict: ``settings``, ``machine``, ``metric``, ``checkpoints``,
        ``members`` (``name``, ``subnet`` (blocks per stage), ``blocks``,
        ``params``, ``flops``, ``latency`` {batch size: {``median_ms``,
        ``iqr_ms``, ...}}, ``onnxruntime_latency``, ``results`` {label:
        {``metric``, ``metrics``, ``recal_images_used``}}), ``frontiers``,
        ``complete``, ``runs`` (with ``timings``).

    Raises:
        MenuSettingsError: ``out_dir`` holds a menu made with other
            settings (names the differing ones).
        ValueError: Invalid arguments (named with the allowed values).
    """
    t_start = time.perf_counter()
    st = config
    if not isinstance(config, MenuSettings):
        st = MenuSettings(config, checkpoints, **options)
    if st.threads is not None:
        torch.set_num_threads(st.threads)
    machine = machine_info(st.torch_device)
    keys = 'config split max_images cfg_options space bn_recal_images seed'
    args = [getattr(st, key) for key in keys.split()]
    with open_sweep(*args, recal_loader=False) as sweep:
        subs = sweep.members(st.specs, 'subnets')
        menu, resumed = _open_menu(st, sweep, subs, machine)
        units = measure.Units(menu, st, on_unit)
        sweep.model.to(st.torch_device)
        prepared = _prepare_data(sweep, st, menu, units.timings)
        rows = _rows(menu, subs, sweep)
        todo = {
            label: [(s, r) for s, r in rows if label not in r['results']]
            for label in st.labels
        }
        todo_latency = [(s, r) for s, r in rows if r['latency'] is None]
        units.start(resumed, sum(map(len, todo.values())) + len(todo_latency))
        with units.bar:
            for label, path in zip(st.labels, st.checkpoints):
                if todo[label]:
                    measure.metric_units(
                        units, sweep, st, label, path, todo[label]
                    )
            measure.latency_units(units, sweep, st, prepared, todo_latency)
    menu['complete'] = _complete(menu, st.labels)
    menu['frontiers'] = {
        label: dict(
            latency=frontier(menu, label, 'latency', st.latency_batch_size),
            flops=frontier(menu, label, 'flops'),
        )
        for label in st.labels
    }
    units.timings['total_s'] = time.perf_counter() - t_start
    units.save()
    return menu


def _open_menu(st: MenuSettings, sweep: Sweep, subs: list, machine: dict):
    """The menu to resume (same settings) or a new one; whether resumed."""
    settings = fingerprint(st, sweep.cfg, subs, machine)
    menu = load_existing(st.out_dir, settings, st.force)
    resumed = menu is not None
    if menu is None:
        menu = new_menu(st, settings, machine, sweep.space)
    menu['latency_batch_size'] = st.latency_batch_size
    menu['latency_runtime'] = st.latency_runtime
    menu.pop('choice', None)  # a budget choice belongs to one call
    return menu, resumed


def _prepare_data(
    sweep: Sweep, st: MenuSettings, menu: dict, timings: dict
) -> Optional[dict]:
    """Cache the batches, record the data facts in ``menu``; return the
    preprocessed first evaluation batch (None for a finished menu)."""
    if menu['members'] and _complete(menu, st.labels):
        return None
    t0 = time.perf_counter()
    loader = sweep.loader
    with quiet_logs():
        cached = measure.cache_loader(loader, st.cache_mb)
    if cached is not None:
        sweep.loader = cached
    with closing_iter(sweep.loader) as iterator:
        first = copy.deepcopy(next(iterator))
    if sweep.recal_images:
        source = build_recal_loader(sweep.cfg, st.seed)
        per_rank = check_recal_images(source, sweep.recal_images)
        sweep.recal = measure.cache_loader(source, math.inf, per_rank)
    timings['cache_s'] += time.perf_counter() - t0
    with torch.no_grad():
        prepared = sweep.model.data_preprocessor(first, False)
    bn_stats = 'stored' if sweep.has_bn else UNTRAINED_BN
    menu.update(
        eval_images=len(loader.dataset),
        input_shape=list(prepared['inputs'].shape[1:]),
        bn_stats='re-estimated' if sweep.recal_images else bn_stats,
        eval_cache=cached is not None,
    )
    return prepared


def _rows(menu: dict, subs: list, sweep: Sweep) -> list:
    """(subnet, row) of every member, in order: the menu's row, else a new
    row with its size and FLOPs."""
    rows = {m['name']: m for m in menu['members']}
    ordered, flops_of = [], None
    for sub in subs:
        row = rows.get(format_subnet(sub))
        if row is None:
            if flops_of is None:
                flops_of, menu['flops_scope'] = measure.flops_counter(
                    sweep.arch, menu['input_shape'], sweep.elastic
                )
            depths = [len(s) for s in sub]
            params = count_params(sweep.arch, sweep.elastic, sub)
            row = dict(name=format_subnet(sub), subnet=depths)
            row.update(blocks=sum(depths), params=params, flops=flops_of(sub))
            row.update(latency=None, onnxruntime_latency=None, results={})
        ordered.append((sub, row))
    menu['members'] = [row for _, row in ordered]
    return ordered


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
    checkpoint (and ONNX file) with :func:`mmst.deploy.export_subnet` and
    the menu's settings, so ``tools/test.py`` on them gives the menu's
    metric; return its summary. ``cfg_options``: the menu's overrides as
    given (None: the menu's JSON copy, tuples turned into lists).

    Raises:
        FileExistsError: Outputs exist and ``force`` is False.
        CheckpointError: The checkpoint is unreadable or no longer fits
            (loaded as strictly as the menu was built).
    """
    from mmst.deploy import export_subnet

    st = menu['settings']
    path = next(c['path'] for c in st['checkpoints'] if c['label'] == label)
    # the menu re-estimated only where BN layers are trained (else the
    # stored statistics, which a re-estimation would leave unchanged)
    recal = menu.get('bn_stats') == 're-estimated'
    if cfg_options is None:
        cfg_options = st['cfg_options'] or None
    return export_subnet(
        st['config'],
        path,
        list(member['subnet']),
        out_dir,
        bn_recal_images=st['bn_recal_images'] if recal else 0,
        seed=st['seed'],
        force=force,
        cfg_options=cfg_options,
        onnx=onnx,
        strict=st.get('strict', True),
    )
