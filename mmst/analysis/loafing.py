"""The loafing table: the task metric of the main network (stored BN
statistics, as ``tools/test.py``) and of its sub-networks (BN re-estimated
as ``SubnetValLoop``), with parameters and FLOPs (``docs/analysis.md``)."""

import functools
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

from mmst.subnet import format_subnet, parse_subnet_specs

from . import report
from .cost import FLOPS_CONVENTION, count_flops, count_params
from .sweep import (
    Measure,
    TaskMetric,
    check_checkpoints,
    input_shape_of,
    open_sweep,
    progress,
    select_metric,
)


def sweep_networks(
    measure: Type[Measure],
    key: str,
    config: str,
    checkpoints: Sequence[str],
    labels: Optional[Sequence[str]] = None,
    subnets: Union[str, Sequence] = ('all',),
    show_progress: bool = False,
    strict: bool = True,
    *,
    row: Optional[Callable] = None,
    check: Optional[Callable] = None,
    desc: str = 'loafing',
    **sweep_options,
) -> Tuple[List[dict], dict]:
    """The main network and the sub-networks of one config measured by a
    new ``measure()`` per checkpoint in one :func:`~.open_sweep` (its
    ``sweep_options``). ``labels``: one distinct name per checkpoint
    (default ``<folder>/<file stem>``); ``subnets``: specs
    (:func:`mmst.subnet.parse_subnet_specs`); ``row(sweep, subnet,
    depths)``: more entries of a network's row (subnet None: the main
    network); ``check(sweep.arch)`` before loading.

    Returns:
        tuple: The networks (``name``, ``subnet`` (blocks per stage),
        ``bn_stats``, the ``row`` entries and ``key``: per label the
        measure's result) and ``dict(config, split, eval_images,
        bn_recal_images, seed, strict, checkpoints, labels, used (per
        checkpoint), recal_images (per re-estimation), has_bn, space)``.

    Raises:
        ValueError: An invalid argument (the message names it).
        CheckpointError: A checkpoint is unreadable (checked first) or,
            when ``strict``, does not fit.
    """
    checkpoints, labels = check_checkpoints(checkpoints, labels)
    specs = parse_subnet_specs(subnets, '--subnets')
    with open_sweep(config, **sweep_options) as sweep:
        if check is not None:
            check(sweep.arch)
        members = [None] + sweep.members(specs)
        networks = [_network(sweep, sub, row, key) for sub in members]
        used = []
        with progress(len(labels), desc, not show_progress) as bar:
            for label, path in zip(labels, checkpoints):
                bar.set_postfix_str(label)
                sweep.load(path, strict)
                found, images = sweep.run(members, [measure()])
                used.append(images)
                for net, result in zip(networks, found):
                    net[key][label] = result[measure.__name__]
                bar.update(1)
    paths = [osp.abspath(path) for path in checkpoints]
    return networks, dict(
        config=osp.abspath(config),
        split=sweep.split,
        eval_images=len(sweep.loader.dataset),
        bn_recal_images=sweep_options.get('bn_recal_images', 2000),
        seed=sweep_options.get('seed', 0),
        strict=strict,
        checkpoints=[dict(label=lb, path=p) for lb, p in zip(labels, paths)],
        labels=labels,
        used=used,
        recal_images=sweep.recal_images,
        has_bn=sweep.has_bn,
        space=sweep.space,
    )


def _network(sweep, sub, row: Optional[Callable], key: str) -> dict:
    depths = sweep.elastic.stage_depths
    depths = depths if sub is None else [len(k) for k in sub]
    recal = sub is not None and sweep.recal_images
    return dict(
        name='main' if sub is None else format_subnet(sub),
        subnet=depths,
        bn_stats='re-estimated' if recal else 'stored',
        **(row(sweep, sub, depths) if row else {}),
        **{key: {}},
    )


def run_loafing(
    config: str,
    checkpoints: Sequence[str],
    *,
    metric: Optional[str] = None,
    **options,
) -> dict:
    """The task metric of the main network and the sub-networks of one
    config per checkpoint (:func:`sweep_networks`, ``options`` as there);
    ``metric``: the key to tabulate (default: the evaluator's first).

    Returns:
        dict: ``config``, ``split``, ``eval_images``, ``metric``,
        ``bn_recal_images``, ``has_bn``, ``seed``, ``strict``,
        ``input_shape``, ``flops_convention``, ``space``, ``checkpoints``
        and ``networks`` (``name``, ``subnet``, ``blocks``, ``params``,
        ``flops``, ``bn_stats``, ``metrics`` (all, per label), ``results``
        (the chosen metric per label), ``recal_images_used``).

    Raises:
        ValueError, CheckpointError: As :func:`sweep_networks`.
    """
    shape = []

    def costs(sweep, subnet, depths) -> dict:
        if not shape:
            shape.extend(input_shape_of(sweep.model, sweep.loader))
        arch, elastic = sweep.arch, sweep.elastic
        return dict(
            blocks=sum(depths),
            params=count_params(arch, elastic, subnet),
            flops=count_flops(arch, tuple(shape), elastic, subnet),
        )

    networks, facts = sweep_networks(
        TaskMetric, 'metrics', config, checkpoints, **options, row=costs
    )
    labels, used = facts['labels'], [u for u in facts['used'] if u]
    metric = select_metric(networks[0]['metrics'][labels[0]], metric)
    for net in networks:
        if used and net['bn_stats'] == 're-estimated':
            net['recal_images_used'] = used[-1]
        net['results'] = {lb: net['metrics'][lb][metric] for lb in labels}
    space = facts['space']
    facts.update(
        metric=metric,
        bn_recal_images=facts['recal_images'],
        input_shape=shape,
        flops_convention=FLOPS_CONVENTION,
        space=dict(
            stage_depths=space.stage_depths, depth_choices=space.depth_choices
        ),
    )
    keys = 'config split eval_images metric bn_recal_images has_bn seed '
    keys += 'strict input_shape flops_convention space checkpoints'
    return dict({k: facts[k] for k in keys.split()}, networks=networks)


def write_csv(result: dict, path: str) -> None:
    """One row per network: sizes, BN statistics, metric per label."""
    labels = report.labels_of(result)
    header = ['network', 'subnet', 'blocks', 'flops', 'params', 'bn_stats']
    header += [f'{label} {result["metric"]}' for label in labels]
    rows = (
        [net['name'], ' '.join(map(str, net['subnet'])), net['blocks']]
        + ['' if net['flops'] is None else net['flops'], net['params']]
        + [net['bn_stats']]
        + [net['results'][label] for label in labels]
        for net in result['networks']
    )
    report.write_csv(path, header, rows)


def _bn_note(result: dict, untrained: str, recal: str, stored: str) -> str:
    """``untrained``, ``recal`` (``{}``: the images) or ``stored``."""
    images = result['bn_recal_images']
    if not result.get('has_bn', True):
        return untrained
    return recal.format(images) if images else stored


def markdown_table(result: dict) -> str:
    """The table as Markdown, after a caption (metric, split, BN)."""
    labels = report.labels_of(result)
    unit, scale = report.flops_unit(result['networks'])
    caption = (
        f'{result["metric"]} on the {result["split"]} set '
        f'({result["eval_images"]} images) of '
        f'`{osp.basename(result["config"])}`; '
    ) + _bn_note(
        result,
        'no BN layer is trained (nothing to re-estimate).',
        'main network with its stored BN statistics, sub-networks with BN '
        'statistics re-estimated on {} training images each.',
        'main network with its stored BN statistics, sub-networks with '
        "the stored (main network's) BN statistics.",
    )
    rows = [
        ['main' if net['name'] == 'main' else 'sub-network']
        + [str(net['subnet']), str(net['blocks'])]
        + [report.fmt(None if net['flops'] is None else net['flops'] / scale)]
        + [f'{net["params"] / 1e6:.3f}']
        + [report.fmt(net['results'][label]) for label in labels]
        for net in result['networks']
    ]
    header = ['network', 'blocks per stage', 'blocks', unit, 'params (M)']
    return report.markdown_table(header + labels, rows, caption)


def plot(result: dict, path: str, title: Optional[str] = None) -> None:
    """Accuracy vs FLOPs and vs blocks kept, one series per checkpoint."""
    labels = report.labels_of(result)
    unit, scale = report.flops_unit(result['networks'])
    has_flops = all(n['flops'] is not None for n in result['networks'])
    ncols = 2 if has_flops else 1
    fig, axes = report.figure(ncols, (6 * ncols, 4.8))
    width = 0.3 if len(labels) > 1 else 0.0
    subnets = [n for n in result['networks'] if n['name'] != 'main']
    main = result['networks'][0]
    panels = [(axes[-1], lambda n, offset: n['blocks'] + offset)]
    if has_flops:
        panels.append((axes[0], lambda n, offset: n['flops'] / scale))
    for i, label in enumerate(labels):
        color, marker = report.style(i)
        c, edge = dict(color=color), dict(edgecolors='black')
        offset = (i - (len(labels) - 1) / 2) * width
        for ax, x in panels:
            xs = [x(n, offset) for n in subnets]
            ys = [n['results'][label] for n in subnets]
            sub = f'{label} sub-networks'
            ax.scatter(xs, ys, marker=marker, alpha=0.75, label=sub, **c)
            xs, ys = [x(main, offset)], [main['results'][label]]
            name = f'{label} main network'
            ax.scatter(xs, ys, marker='*', s=220, label=name, **c, **edge)
    if has_flops:
        axes[0].set_xlabel(unit)
    axes[-1].set_xlabel('residual blocks kept')
    for ax in axes:
        ax.set_ylabel(result['metric'])
        ax.grid(alpha=0.3)
    handles, names = axes[-1].get_legend_handles_labels()
    legend = dict(loc='lower center', fontsize=8, frameon=False)
    fig.legend(handles, names, ncol=min(4, len(names)), **legend)
    note = _bn_note(
        result,
        'no trained BN layer',
        'sub-networks with BN re-estimated on {} images',
        "sub-networks with the main network's BN statistics",
    )
    suptitle = title or f'{osp.basename(result["config"])}: {note}'
    fig.suptitle(suptitle, fontsize=10)
    report.save_figure(fig, path, dpi=110, rect=(0, 0.07, 1, 1))


def write_all(
    result: dict,
    out_dir: str,
    plot_path: Optional[str] = None,
    title: Optional[str] = None,
) -> Dict[str, str]:
    """Write ``loafing.json``, ``.csv``, ``.md``, ``.png`` (or
    ``plot_path``) to ``out_dir``; return their paths."""
    md, png = markdown_table, functools.partial(plot, title=title)
    return report.write_outputs(
        result, out_dir, 'loafing', write_csv, md, png, 2, plot_path
    )
