"""The loafing table: accuracy (or the task metric) of the main network
and of its sub-networks, each sub-network with its own re-estimated BN
statistics, with parameters and FLOPs (``docs/analysis.md``).

The main network is evaluated with its stored BN statistics (the number
``tools/test.py`` gives); every sub-network, the full-depth member of the
space included, with BN statistics re-estimated for it on
``bn_recal_images`` training images (the same images, with the same
augmentations, for every sub-network: :func:`mmst.analysis.build_recal_loader`
seeded with ``seed``, the loader ``SubnetValLoop`` uses too).
:func:`mmst.analysis.export_subnet` re-estimates exactly the same
statistics, so the exported sub-network reproduces the number in the
table.
"""

import csv
import json
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple, Union

from mmst.subnet import format_subnet, parse_subnet_specs

from .cost import FLOPS_CONVENTION, count_flops, count_params
from .runner import check_bn_recal_images, input_shape_of, progress
from .sweep import TaskMetric, check_checkpoints, open_sweep, select_metric


def run_loafing(
    config: str,
    checkpoints: Sequence[str],
    labels: Optional[Sequence[str]] = None,
    subnets: Union[str, Sequence] = ('all',),
    space: Optional[str] = None,
    bn_recal_images: int = 2000,
    split: str = 'val',
    metric: Optional[str] = None,
    max_images: Optional[int] = None,
    seed: int = 0,
    cfg_options: Optional[dict] = None,
    show_progress: bool = False,
    strict: bool = True,
) -> dict:
    """Evaluate the main network and the sub-networks of one config with
    one or more checkpoints (a :mod:`mmst.analysis.sweep` with the task
    metric).

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
        metric (str, optional): Metric key to tabulate (default: the
            first the evaluator returns).
        max_images (int, optional): Evaluate on the first N images.
        seed (int): Seed of the re-estimation images and augmentations.
        cfg_options (dict, optional): Config overrides.
        show_progress (bool): A progress bar on stderr.
        strict (bool): Refuse a checkpoint with a missing, unexpected or
            mis-shaped key (:func:`mmst.analysis.load_weights`). Defaults
            to True; False loads the keys that fit and logs the others.

    Returns:
        dict: ``config``, ``split``, ``eval_images``, ``metric``,
        ``bn_recal_images``, ``seed``, ``strict``, ``input_shape``,
        ``flops_convention``, ``space``, ``checkpoints`` and ``networks``
        (per network: ``name``, ``subnet`` (blocks per stage), ``blocks``,
        ``params``, ``flops``, ``bn_stats``, ``metrics`` (all metrics per
        label), ``results`` (the chosen metric per label) and
        ``recal_images_used``). :func:`write_all` writes it.

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
        members = [None] + sweep.members(specs)
        arch, elastic = sweep.arch, sweep.elastic
        shape = input_shape_of(sweep.model, sweep.loader)
        networks = []
        for subnet in members:
            depths = (
                elastic.stage_depths
                if subnet is None
                else [len(kept) for kept in subnet]
            )
            networks.append(
                dict(
                    name='main' if subnet is None else format_subnet(subnet),
                    subnet=None,
                    bn_stats='re-estimated'
                    if subnet is not None and sweep.recal_images
                    else 'stored',
                    depths=depths,
                    blocks=sum(depths),
                    params=count_params(arch, elastic, subnet),
                    flops=count_flops(arch, shape, elastic, subnet),
                    metrics={},
                )
            )
        bar = progress(len(labels), 'loafing', not show_progress)
        try:
            for label, path in zip(labels, checkpoints):
                bar.set_postfix_str(label)
                sweep.load(path, strict)
                found, used = sweep.run(members, [TaskMetric()])
                for net, result in zip(networks, found):
                    net['metrics'][label] = result['TaskMetric']
                    if used and net['bn_stats'] == 're-estimated':
                        net['recal_images_used'] = used
                bar.update(1)
        finally:
            bar.close()
        eval_images = len(sweep.loader.dataset)
        recal_images, has_bn = sweep.recal_images, sweep.has_bn

    metric = select_metric(networks[0]['metrics'][labels[0]], metric)
    for net in networks:
        net['subnet'] = net.pop('depths')
        net['results'] = {
            label: net['metrics'][label][metric] for label in labels
        }
    return dict(
        config=osp.abspath(config),
        split=split,
        eval_images=eval_images,
        metric=metric,
        bn_recal_images=recal_images,
        has_bn=has_bn,
        seed=seed,
        strict=strict,
        input_shape=list(shape),
        flops_convention=FLOPS_CONVENTION,
        space=dict(
            stage_depths=sweep.space.stage_depths,
            depth_choices=sweep.space.depth_choices,
        ),
        checkpoints=[
            dict(label=label, path=osp.abspath(path))
            for label, path in zip(labels, checkpoints)
        ],
        networks=networks,
    )


def _flops_unit(result: dict) -> Tuple[str, float]:
    flops = [n['flops'] for n in result['networks'] if n['flops']]
    if flops and max(flops) >= 1e9:
        return 'GFLOPs', 1e9
    return 'MFLOPs', 1e6


def _fmt(value: Optional[float], digits: int = 2) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def write_csv(result: dict, path: str) -> None:
    labels = [c['label'] for c in result['checkpoints']]
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(
            ['network', 'subnet', 'blocks', 'flops', 'params', 'bn_stats']
            + [f'{label} {result["metric"]}' for label in labels]
        )
        for net in result['networks']:
            writer.writerow(
                [
                    net['name'],
                    ' '.join(map(str, net['subnet'])),
                    net['blocks'],
                    net['flops'] if net['flops'] is not None else '',
                    net['params'],
                    net['bn_stats'],
                ]
                + [net['results'][label] for label in labels]
            )


def markdown_table(result: dict) -> str:
    labels = [c['label'] for c in result['checkpoints']]
    unit, scale = _flops_unit(result)
    recal = result['bn_recal_images']
    lines = [
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
        ),
        '',
        '| network | blocks per stage | blocks | '
        f'{unit} | params (M) | ' + ' | '.join(labels) + ' |',
        '|---|---|---|---|---|' + '---|' * len(labels),
    ]
    for net in result['networks']:
        flops = net['flops'] / scale if net['flops'] is not None else None
        name = 'main' if net['name'] == 'main' else 'sub-network'
        lines.append(
            f'| {name} | {net["subnet"]} | {net["blocks"]} | '
            f'{_fmt(flops)} | {net["params"] / 1e6:.3f} | '
            + ' | '.join(_fmt(net['results'][lb]) for lb in labels)
            + ' |'
        )
    return '\n'.join(lines) + '\n'


def plot(result: dict, path: str, title: Optional[str] = None) -> None:
    """Accuracy vs FLOPs and vs blocks kept, one series per checkpoint."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = [c['label'] for c in result['checkpoints']]
    unit, scale = _flops_unit(result)
    has_flops = all(n['flops'] is not None for n in result['networks'])
    ncols = 2 if has_flops else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.8), squeeze=False)
    axes = axes[0]
    colors = ['tab:blue', 'tab:red', 'tab:green', 'tab:purple']
    markers = ['o', 's', '^', 'D']
    width = 0.3 if len(labels) > 1 else 0.0
    subnets = [n for n in result['networks'] if n['name'] != 'main']
    main = result['networks'][0]
    for i, label in enumerate(labels):
        color, marker = colors[i % len(colors)], markers[i % len(markers)]
        offset = (i - (len(labels) - 1) / 2) * width
        ys = [n['results'][label] for n in subnets]
        ax_depth = axes[-1]
        ax_depth.scatter(
            [n['blocks'] + offset for n in subnets],
            ys,
            color=color,
            marker=marker,
            alpha=0.75,
            label=f'{label} sub-networks',
        )
        ax_depth.scatter(
            [main['blocks'] + offset],
            [main['results'][label]],
            color=color,
            marker='*',
            s=220,
            edgecolors='black',
            label=f'{label} main network',
        )
        if has_flops:
            ax = axes[0]
            ax.scatter(
                [n['flops'] / scale for n in subnets],
                ys,
                color=color,
                marker=marker,
                alpha=0.75,
                label=f'{label} sub-networks',
            )
            ax.scatter(
                [main['flops'] / scale],
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
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(
    result: dict,
    out_dir: str,
    plot_path: Optional[str] = None,
    title: Optional[str] = None,
) -> Dict[str, str]:
    """Write JSON, CSV, Markdown and PNG; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = dict(
        json=osp.join(out_dir, 'loafing.json'),
        csv=osp.join(out_dir, 'loafing.csv'),
        md=osp.join(out_dir, 'loafing.md'),
        png=plot_path or osp.join(out_dir, 'loafing.png'),
    )
    with open(paths['json'], 'w') as f:
        json.dump(result, f, indent=2)
    write_csv(result, paths['csv'])
    with open(paths['md'], 'w') as f:
        f.write(markdown_table(result))
    plot(result, paths['png'], title)
    return paths
