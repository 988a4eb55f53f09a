"""The loafing table: accuracy (or the task metric) of the main network
and of its sub-networks, each sub-network with its own re-estimated BN
statistics, with parameters and FLOPs (``docs/analysis.md``).

The main network is evaluated with its stored BN statistics (the number
``tools/test.py`` gives); every sub-network, the full-depth member of the
space included, with BN statistics re-estimated for it on
``bn_recal_images`` training images (the same images, with the same
augmentations, for every sub-network: :func:`mmst.analysis.build_recal_loader`
seeded with ``seed``, the loader ``SubnetValLoop`` uses too).
:func:`mmst.deploy.export_subnet` re-estimates exactly the same
statistics, so the exported sub-network reproduces the number in the
table.
"""

import functools
import os.path as osp
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

from mmst.subnet import format_subnet, parse_subnet_specs

from . import report
from .cost import FLOPS_CONVENTION, count_flops, count_params
from .runner import check_bn_recal_images, input_shape_of, progress
from .sweep import (
    Measure,
    TaskMetric,
    check_checkpoints,
    open_sweep,
    select_metric,
)


def sweep_networks(
    measure: Type[Measure],
    key: str,
    config: str,
    checkpoints: Sequence[str],
    labels: Optional[Sequence[str]] = None,
    subnets: Union[str, Sequence] = ('all',),
    space: Optional[str] = None,
    bn_recal_images: int = 2000,
    split: str = 'val',
    max_images: Optional[int] = None,
    seed: int = 0,
    cfg_options: Optional[dict] = None,
    show_progress: bool = False,
    strict: bool = True,
    *,
    row: Optional[Callable] = None,
    check: Optional[Callable] = None,
    desc: str = 'loafing',
) -> Tuple[List[dict], dict]:
    """The main network and the sub-networks of one config, measured by a
    new ``measure()`` for each checkpoint (a :mod:`mmst.analysis.sweep`):
    what :func:`run_loafing` and :func:`mmst.analysis.run_logit_magnitude`
    share.

    Args:
        config (str): Config file (mmst ST config or upstream).
        checkpoints (Sequence[str]): Checkpoints of models built by
            ``config`` (e.g. a CT and an ST++ one).
        labels (Sequence[str], optional): One distinct series name per
            checkpoint (default: ``<folder>/<file stem>``).
        subnets (str | Sequence): Sub-network specs
            (:func:`mmst.subnet.parse_subnet_specs`). Defaults to all
            members of the space.
        space (str, optional): Space preset (``'default'``, ``'space1'``
            ...); default: the ST model's space, or every depth of each
            stage of a plain model.
        bn_recal_images (int): Training images for each sub-network's BN
            statistics (0: the stored statistics, which shows BN mismatch,
            not loafing). Defaults to 2000.
        split (str): ``'val'`` or ``'test'``.
        max_images (int, optional): Evaluate on the first N images.
        seed (int): Seed of the re-estimation images and augmentations.
        cfg_options (dict, optional): Config overrides.
        show_progress (bool): A progress bar on stderr.
        strict (bool): Refuse a checkpoint with a missing, unexpected or
            mis-shaped key (:func:`mmst.analysis.load_weights`). Defaults
            to True; False loads the keys that fit and logs the others.
        row (callable, optional): ``row(sweep, subnet, depths)``: more
            entries of a network's row (None: the main network).
        check (callable, optional): ``check(sweep.arch)`` before anything
            is loaded.
        desc (str): The progress bar's name.

    Returns:
        tuple: The networks (``name``, ``subnet`` (blocks per stage),
        ``bn_stats``, the ``row`` entries and ``key``: per label the
        measure's result) and ``dict(labels, checkpoints, used,
        eval_images, recal_images, has_bn, space)`` (``used``: the
        re-estimation images of each checkpoint).

    Raises:
        ValueError: An invalid argument (the message names it).
        CheckpointError: A checkpoint is unreadable (checked before
            anything is evaluated) or, when ``strict``, does not fit the
            model (a ``ValueError``; a missing file is also a
            ``FileNotFoundError``).
    """
    checkpoints, labels = check_checkpoints(checkpoints, labels)
    check_bn_recal_images(bn_recal_images)
    specs = parse_subnet_specs(subnets, '--subnets')
    with open_sweep(
        config, split, max_images, cfg_options, space, bn_recal_images, seed
    ) as sweep:
        if check is not None:
            check(sweep.arch)
        members = [None] + sweep.members(specs)
        networks = [_network(sweep, sub, row, key) for sub in members]
        used = []
        bar = progress(len(labels), desc, not show_progress)
        try:
            for label, path in zip(labels, checkpoints):
                bar.set_postfix_str(label)
                sweep.load(path, strict)
                found, images = sweep.run(members, [measure()])
                used.append(images)
                for net, result in zip(networks, found):
                    net[key][label] = result[measure.__name__]
                bar.update(1)
        finally:
            bar.close()
    return networks, dict(
        labels=labels,
        checkpoints=[
            dict(label=label, path=osp.abspath(path))
            for label, path in zip(labels, checkpoints)
        ],
        used=used,
        eval_images=len(sweep.loader.dataset),
        recal_images=sweep.recal_images,
        has_bn=sweep.has_bn,
        space=sweep.space,
    )


def _network(sweep, sub, row: Optional[Callable], key: str) -> dict:
    """The row of the main network (``sub`` None) or a sub-network."""
    depths = sweep.elastic.stage_depths
    depths = depths if sub is None else [len(k) for k in sub]
    return dict(
        name='main' if sub is None else format_subnet(sub),
        subnet=depths,
        bn_stats='re-estimated'
        if sub is not None and sweep.recal_images
        else 'stored',
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
    """Evaluate the main network and the sub-networks of one config with
    one or more checkpoints (:func:`sweep_networks` with the task metric).

    ``metric``: the metric key to tabulate (default: the first the
    evaluator returns); ``options``: as :func:`sweep_networks`
    (``labels``, ``subnets``, ``space``, ``bn_recal_images``, ``split``,
    ``max_images``, ``seed``, ``cfg_options``, ``show_progress``,
    ``strict``).

    Returns:
        dict: ``config``, ``split``, ``eval_images``, ``metric``,
        ``bn_recal_images``, ``seed``, ``strict``, ``input_shape``,
        ``flops_convention``, ``space``, ``checkpoints`` and ``networks``
        (per network: ``name``, ``subnet`` (blocks per stage), ``blocks``,
        ``params``, ``flops``, ``bn_stats``, ``metrics`` (all metrics per
        label), ``results`` (the chosen metric per label) and
        ``recal_images_used``). :func:`write_all` writes it.

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
        net['results'] = {
            label: net['metrics'][label][metric] for label in labels
        }
    return dict(
        config=osp.abspath(config),
        split=options.get('split', 'val'),
        eval_images=facts['eval_images'],
        metric=metric,
        bn_recal_images=facts['recal_images'],
        has_bn=facts['has_bn'],
        seed=options.get('seed', 0),
        strict=options.get('strict', True),
        input_shape=shape,
        flops_convention=FLOPS_CONVENTION,
        space=dict(
            stage_depths=facts['space'].stage_depths,
            depth_choices=facts['space'].depth_choices,
        ),
        checkpoints=facts['checkpoints'],
        networks=networks,
    )


def write_csv(result: dict, path: str) -> None:
    """One row per network: blocks, FLOPs, parameters, BN statistics and
    the metric per checkpoint."""
    labels = report.labels_of(result)
    report.write_csv(
        path,
        ['network', 'subnet', 'blocks', 'flops', 'params', 'bn_stats']
        + [f'{label} {result["metric"]}' for label in labels],
        (
            [
                net['name'],
                ' '.join(map(str, net['subnet'])),
                net['blocks'],
                net['flops'] if net['flops'] is not None else '',
                net['params'],
                net['bn_stats'],
            ]
            + [net['results'][label] for label in labels]
            for net in result['networks']
        ),
    )


def markdown_table(result: dict) -> str:
    """The table as Markdown, after a line naming the metric, the split
    and the BN statistics."""
    labels = report.labels_of(result)
    unit, scale = report.flops_unit(result['networks'])
    recal = result['bn_recal_images']
    caption = (
        f'{result["metric"]} on the {result["split"]} set '
        f'({result["eval_images"]} images) of '
        f'`{osp.basename(result["config"])}`'
        + (
            '; no BN layer is trained (nothing to re-estimate).'
            if not result.get('has_bn', True)
            else '; main network with its stored BN statistics, '
            'sub-networks with '
            + (
                f'BN statistics re-estimated on {recal} training images each.'
                if recal
                else "the stored (main network's) BN statistics."
            )
        )
    )
    rows = [
        [
            'main' if net['name'] == 'main' else 'sub-network',
            str(net['subnet']),
            str(net['blocks']),
            report.fmt(None if net['flops'] is None else net['flops'] / scale),
            f'{net["params"] / 1e6:.3f}',
        ]
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
        color = report.COLORS[i % len(report.COLORS)]
        marker = report.MARKERS[i % len(report.MARKERS)]
        offset = (i - (len(labels) - 1) / 2) * width
        for ax, x in panels:
            ax.scatter(
                [x(n, offset) for n in subnets],
                [n['results'][label] for n in subnets],
                color=color,
                marker=marker,
                alpha=0.75,
                label=f'{label} sub-networks',
            )
            ax.scatter(
                [x(main, offset)],
                [main['results'][label]],
                color=color,
                marker='*',
                s=220,
                edgecolors='black',
                label=f'{label} main network',
            )
    if has_flops:
        axes[0].set_xlabel(unit)
    axes[-1].set_xlabel('residual blocks kept')
    for ax in axes:
        ax.set_ylabel(result['metric'])
        ax.grid(alpha=0.3)
    handles, names = axes[-1].get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        loc='lower center',
        ncol=min(4, len(names)),
        fontsize=8,
        frameon=False,
    )
    recal = result['bn_recal_images']
    fig.suptitle(
        title
        or f'{osp.basename(result["config"])}: '
        + (
            'no trained BN layer'
            if not result.get('has_bn', True)
            else 'sub-networks with '
            + (
                f'BN re-estimated on {recal} images'
                if recal
                else "the main network's BN statistics"
            )
        ),
        fontsize=10,
    )
    report.save_figure(fig, path, dpi=110, rect=(0, 0.07, 1, 1))


def write_all(
    result: dict,
    out_dir: str,
    plot_path: Optional[str] = None,
    title: Optional[str] = None,
) -> Dict[str, str]:
    """Write ``loafing.json``, ``.csv``, ``.md`` and ``.png`` (``plot_path``
    when given) to ``out_dir``; return their paths."""
    md, png = markdown_table, functools.partial(plot, title=title)
    return report.write_outputs(
        result, out_dir, 'loafing', write_csv, md, png, 2, plot_path
    )
