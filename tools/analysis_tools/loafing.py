"""The loafing table: accuracy of the main network and of its sub-networks,
each sub-network with its own re-estimated BN statistics.

    python tools/analysis_tools/loafing.py CONFIG CHECKPOINT [CHECKPOINT2]
        [--labels CT ST++] [--subnets all | smallest largest | 1,1,1 ...]
        [--space default|space1..space7] [--bn-recal-images 2000]
        [--no-bn-recal] [--split val|test] [--metric KEY]
        [--max-val-images N] [--seed 0] [--out-dir DIR] [--plot FILE]
        [--cfg-options k=v ...]

Writes ``loafing.json``, ``loafing.csv``, ``loafing.md`` and ``loafing.png``
(accuracy vs FLOPs and vs blocks kept) to ``--out-dir``. With two
checkpoints (one config: e.g. a conventionally trained and an ST model of
the same architecture) both series are shown side by side.

The main network is evaluated with its stored BN statistics (the number
``tools/test.py`` gives); every sub-network, the full-depth member of the
space included, with BN statistics re-estimated for it on
``--bn-recal-images`` training images (the same images, with the same
augmentations, for every sub-network: a loader of its own built from the
config's ``train_dataloader`` and seeded with ``--seed``, see
:func:`mmst.engine.build_recal_loader`; ``SubnetValLoop`` uses the same
one). ``tools/model_converters/extract_subnet.py`` re-estimates
exactly the same statistics, so its standalone sub-network reproduces the
number in this table.

The module also holds the helpers of ``logit_magnitude.py`` and
``extract_subnet.py`` (building the model from a config, loading
checkpoints, the seeded re-estimation loader, FLOPs of a sub-network).
"""

import argparse
import copy
import csv
import json
import logging
import os
import os.path as osp
import sys
import tempfile
import uuid
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config, DictAction
from mmengine.logging import MMLogger
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmst.apis import prepare_config
from mmst.engine import (
    RecalLoader,
    elastic_of,
    evaluate_subnet,
    resolve_subnets,
)
from mmst.engine import build_recal_loader as engine_recal_loader
from mmst.models.algorithms.stimulative import unwrap_st
from mmst.subnet import ElasticDepth, SubnetSpace, format_subnet
from mmst.subnet.space import PRESETS, Subnet

PROG = 'loafing'
SPLITS = ('val', 'test')
NAMED = ('all', 'smallest', 'largest', 'full')
FLOPS_CONVENTION = (
    "mmengine's FlopAnalyzer (fvcore convention: one multiply-add = 1 FLOP; "
    'BN, ReLU and additions not counted), batch of one at the input size'
)


# -- configs, runners and checkpoints -----------------------------------
def parse_subnet_specs(values: Sequence[str]) -> List[Union[str, List[int]]]:
    """``['all']``, ``['smallest', '2,2,2']`` ... -> specs of
    :func:`mmst.engine.resolve_subnets`.

    Args:
        values (Sequence[str]): Names (``all | smallest | largest | full``)
            or comma-separated blocks kept per stage (``'1,2,3'``; brackets
            and spaces are ignored).

    Returns:
        list: Names and depth lists.
    """
    specs: List[Union[str, List[int]]] = []
    for value in values:
        text = str(value).strip()
        if text in NAMED:
            specs.append(text)
            continue
        parts = text.strip('[]() ').replace(' ', '').split(',')
        try:
            depths = [int(p) for p in parts if p != '']
        except ValueError:
            depths = []
        if not depths:
            raise ValueError(
                f'--subnets entry {value!r} is invalid; allowed: '
                + ' | '.join(NAMED)
                + ' or blocks kept per stage, e.g. 1,2,3'
            )
        specs.append(depths)
    return specs


def load_config(
    config: str,
    cfg_options: Optional[dict] = None,
    split: str = 'val',
    max_images: Optional[int] = None,
) -> Config:
    """Read ``config``, apply ``--cfg-options``, keep the first
    ``max_images`` images of the ``split`` set, and register mmst and the
    config's task library.

    Args:
        config (str): Config file.
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        split (str): ``'val'`` or ``'test'``: which dataloader / evaluator
            to use.
        max_images (int, optional): Evaluate on the first N images.

    Returns:
        Config: The config.
    """
    if split not in SPLITS:
        raise ValueError(
            f'split={split!r} is invalid; allowed: ' + ' | '.join(SPLITS)
        )
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    loader = cfg.get(f'{split}_dataloader')
    if not loader or not cfg.get(f'{split}_evaluator'):
        raise ValueError(
            f'{config} has no {split}_dataloader / {split}_evaluator; '
            f'use --split {"test" if split == "val" else "val"}'
        )
    if max_images is not None:
        if max_images < 1:
            raise ValueError(
                f'max images={max_images!r} is invalid; allowed: an '
                'integer >= 1'
            )
        loader.dataset.indices = max_images
    prepare_config(cfg)
    return cfg


@contextmanager
def quiet_logs(level: int = logging.WARNING) -> Iterator[None]:
    """Raise the current MMLogger's level for the duration."""
    logger = MMLogger.get_current_instance()
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


def build_runner(cfg: Config, work_dir: str) -> Runner:
    """The config's Runner (as ``tools/test.py`` builds it) with its logs
    in ``work_dir``; nothing is loaded or run."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.load_from = None
    cfg.resume = False
    cfg.log_level = 'WARNING'
    cfg.launcher = 'none'
    # A unique name: the logger and visualizer are per-name singletons, and
    # an earlier runner's (in a removed temporary folder) must not be reused.
    cfg.experiment_name = f'{PROG}_{uuid.uuid4().hex[:8]}'
    runner = (
        Runner.from_cfg(cfg)
        if 'runner_type' not in cfg
        else RUNNERS.build(cfg)
    )
    runner.model.eval()
    return runner


def load_weights(runner: Runner, checkpoint: str) -> dict:
    """Load ``checkpoint`` into the runner's model (non-strict, as
    ``tools/test.py``; mismatched keys are logged)."""
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')
    ckpt = runner.load_checkpoint(checkpoint, map_location='cpu')
    runner.model.eval()
    return ckpt


def model_space(
    model: nn.Module, preset: Optional[str] = None
) -> Tuple[ElasticDepth, SubnetSpace]:
    """The elastic backbone and sub-network space of ``model``: the ST
    model's space, or the default space of a plain model's backbone;
    ``preset`` (``'default'``, ``'space1'`` ...) overrides the depths."""
    elastic, space = elastic_of(model)
    if preset is not None:
        space = SubnetSpace(elastic.stage_depths, preset)
    return elastic, space


def build_recal_loader(cfg: Config, seed: int = 0) -> RecalLoader:
    """The BN re-estimation loader of ``cfg``: its ``train_dataloader``
    made repeatable and independent of training
    (:func:`mmst.engine.build_recal_loader`, the loader
    ``SubnetValLoop`` uses too).

    Raises:
        ValueError: ``cfg`` has no ``train_dataloader``.
    """
    loader_cfg = cfg.get('train_dataloader')
    if not loader_cfg:
        raise ValueError(
            'BN re-estimation needs train_dataloader in the config (or '
            'pass --no-bn-recal / --bn-recal-images 0)'
        )
    return engine_recal_loader(loader_cfg, seed)


def build_evaluation(runner: Runner, cfg: Config, split: str = 'val'):
    """The ``split`` dataloader and evaluator of the config."""
    loader = runner.build_dataloader(cfg.get(f'{split}_dataloader'))
    evaluator = runner.build_evaluator(cfg.get(f'{split}_evaluator'))
    metainfo = getattr(loader.dataset, 'metainfo', None)
    if metainfo is not None:
        evaluator.dataset_meta = metainfo
    return loader, evaluator


def input_shape_of(model: nn.Module, dataloader) -> Tuple[int, ...]:
    """(C, H, W) of the first preprocessed input of ``dataloader``."""
    data = next(iter(dataloader))
    data = model.data_preprocessor(data, False)
    return tuple(data['inputs'].shape[1:])


def skipped_blocks(
    elastic: ElasticDepth, subnet: Optional[Subnet]
) -> List[nn.Module]:
    if subnet is None:
        return []
    return [
        block
        for kept, stage in zip(subnet, elastic.stages)
        for i, block in enumerate(stage)
        if i not in kept
    ]


def count_params(
    arch: nn.Module, elastic: ElasticDepth, subnet: Optional[Subnet]
) -> int:
    """Parameters of ``arch`` that ``subnet`` uses."""
    total = sum(p.numel() for p in arch.parameters())
    skipped = sum(
        p.numel()
        for block in skipped_blocks(elastic, subnet)
        for p in block.parameters()
    )
    return total - skipped


@torch.no_grad()
def count_flops(
    arch: nn.Module,
    input_shape: Sequence[int],
    elastic: Optional[ElasticDepth] = None,
    subnet: Optional[Subnet] = None,
) -> Optional[int]:
    """FLOPs of one forward (``mode='tensor'``) of ``arch`` at
    ``input_shape`` run as ``subnet`` (see :data:`FLOPS_CONVENTION`);
    None where mmengine cannot trace the model."""
    from mmengine.analysis import FlopAnalyzer

    param = next(arch.parameters(), None)
    device = param.device if param is not None else 'cpu'
    inputs = torch.zeros((1, *input_shape), device=device)
    was_training = arch.training
    arch.eval()
    try:
        with quiet_logs(logging.ERROR):
            if elastic is not None:
                with elastic.activate(subnet):
                    analyzer = FlopAnalyzer(arch, (inputs,))
                    flops = analyzer.unsupported_ops_warnings(
                        False
                    ).uncalled_modules_warnings(False)
                    return int(flops.total())
            analyzer = FlopAnalyzer(arch, (inputs,))
            flops = analyzer.unsupported_ops_warnings(
                False
            ).uncalled_modules_warnings(False)
            return int(flops.total())
    except Exception as e:  # tracing is best effort
        print(
            f'{PROG}: warning: cannot count FLOPs of '
            f'{type(arch).__name__} ({type(e).__name__}: {e})',
            file=sys.stderr,
        )
        return None
    finally:
        arch.train(was_training)


def progress(total: int, desc: str, disable: bool = False):
    """A tqdm progress bar on stderr."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=disable,
    )


def default_labels(checkpoints: Sequence[str]) -> List[str]:
    labels = []
    for path in checkpoints:
        parent = osp.basename(osp.dirname(osp.abspath(path)))
        stem = osp.splitext(osp.basename(path))[0]
        labels.append(f'{parent}/{stem}' if parent else stem)
    if len(set(labels)) < len(labels):
        labels = [f'{i + 1}:{label}' for i, label in enumerate(labels)]
    return labels


def check_labels(
    labels: Optional[Sequence[str]], checkpoints: Sequence[str]
) -> List[str]:
    if labels is None:
        return default_labels(checkpoints)
    if len(labels) != len(checkpoints) or len(set(labels)) < len(labels):
        raise ValueError(
            f'--labels {list(labels)} is invalid; allowed: one distinct '
            f'label per checkpoint ({len(checkpoints)} given)'
        )
    return list(labels)


# -- the loafing table ---------------------------------------------------
def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG,
        description='Accuracy of the main network and its sub-networks '
        '(the loafing view), each sub-network with its own re-estimated '
        'BN statistics',
    )
    p.add_argument('config', help='config file (mmst or upstream)')
    p.add_argument(
        'checkpoints',
        nargs='+',
        metavar='CHECKPOINT',
        help='one or two checkpoints of models built by CONFIG '
        '(e.g. CT and ST++)',
    )
    p.add_argument(
        '--labels', nargs='+', help='series names, one per checkpoint'
    )
    p.add_argument(
        '--subnets',
        nargs='+',
        default=['all'],
        help='all | smallest | largest | full, or blocks kept per stage '
        '("1,1,1" "2,2,2" ...); default: all members of the space',
    )
    p.add_argument(
        '--space',
        choices=PRESETS,
        help="sub-network space (default: the ST model's space, or every "
        'depth of each stage of a plain model)',
    )
    p.add_argument(
        '--bn-recal-images',
        type=int,
        default=2000,
        help="training images to re-estimate each sub-network's BN "
        'statistics on (0: the stored statistics)',
    )
    p.add_argument(
        '--no-bn-recal',
        action='store_true',
        help="evaluate sub-networks with the stored (main network's) BN "
        'statistics: shows BN mismatch, not loafing',
    )
    p.add_argument('--split', choices=SPLITS, default='val')
    p.add_argument(
        '--metric',
        help='metric key to tabulate and plot (default: the first one the '
        'evaluator returns, e.g. accuracy/top1)',
    )
    p.add_argument(
        '--max-val-images', type=int, help='evaluate on the first N images'
    )
    p.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the BN re-estimation images and augmentations',
    )
    p.add_argument(
        '--out-dir',
        help='output folder (default: work_dirs/loafing/<config name>)',
    )
    p.add_argument('--plot', help='PNG file (default: OUT_DIR/loafing.png)')
    p.add_argument('--title', help='plot title')
    p.add_argument(
        '--no-progress', action='store_true', help='no progress bar'
    )
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value',
    )
    args = p.parse_args(argv)
    if len(args.checkpoints) > 2:
        p.error('give one or two checkpoints')
    if args.bn_recal_images < 0:
        p.error(
            f'--bn-recal-images {args.bn_recal_images} is invalid; '
            'allowed: an integer >= 0'
        )
    return args


def select_metric(metrics: Dict[str, float], key: Optional[str]) -> str:
    if not metrics:
        raise ValueError('the evaluator returned no metrics')
    if key is None:
        return next(iter(metrics))
    if key not in metrics:
        raise ValueError(
            f"--metric {key!r} is not among the evaluator's metrics; "
            f'allowed: {" | ".join(metrics)}'
        )
    return key


def run_loafing(args: argparse.Namespace) -> dict:
    """Evaluate and return the result dict (written by :func:`write_all`)."""
    specs = parse_subnet_specs(args.subnets)
    labels = check_labels(args.labels, args.checkpoints)
    recal_images = 0 if args.no_bn_recal else args.bn_recal_images
    cfg = load_config(
        args.config, args.cfg_options, args.split, args.max_val_images
    )
    with tempfile.TemporaryDirectory(prefix='mmst_loafing_') as tmp:
        runner = build_runner(cfg, tmp)
        model = runner.model
        arch = unwrap_st(model)
        elastic, space = model_space(model, args.space)
        subnets = resolve_subnets(specs, space)
        loader, evaluator = build_evaluation(runner, cfg, args.split)
        recal = build_recal_loader(cfg, args.seed) if recal_images else None
        shape = input_shape_of(model, loader)

        networks = [dict(name='main', subnet=None, bn_stats='stored')]
        for subnet in subnets:
            networks.append(
                dict(
                    name=format_subnet(subnet),
                    subnet=subnet,
                    bn_stats='re-estimated' if recal_images else 'stored',
                )
            )
        for net in networks:
            subnet = net['subnet']
            depths = (
                [len(s) for s in subnet]
                if subnet is not None
                else elastic.stage_depths
            )
            net.update(
                depths=depths,
                blocks=sum(depths),
                params=count_params(arch, elastic, subnet),
                flops=count_flops(arch, shape, elastic, subnet),
                metrics={},
            )

        bar = progress(
            len(labels) * len(networks), 'loafing', args.no_progress
        )
        try:
            for label, path in zip(labels, args.checkpoints):
                load_weights(runner, path)
                for net in networks:
                    bar.set_postfix_str(f'{label} {net["name"]}')
                    use_recal = recal_images if net['subnet'] else 0
                    net['metrics'][label] = {
                        k: float(v)
                        for k, v in evaluate_subnet(
                            model,
                            net['subnet'],
                            elastic,
                            loader,
                            evaluator,
                            recal,
                            use_recal,
                        ).items()
                    }
                    if use_recal:
                        net['recal_images_used'] = recal.last_count
                    bar.update(1)
        finally:
            bar.close()

    metric = select_metric(networks[0]['metrics'][labels[0]], args.metric)
    for net in networks:
        net['subnet'] = net.pop('depths')
        net['results'] = {
            label: net['metrics'][label][metric] for label in labels
        }
    return dict(
        config=osp.abspath(args.config),
        split=args.split,
        eval_images=len(loader.dataset),
        metric=metric,
        bn_recal_images=recal_images,
        seed=args.seed,
        input_shape=list(shape),
        flops_convention=FLOPS_CONVENTION,
        space=dict(
            stage_depths=space.stage_depths,
            depth_choices=space.depth_choices,
        ),
        checkpoints=[
            dict(label=label, path=osp.abspath(path))
            for label, path in zip(labels, args.checkpoints)
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
        f'; main network with its stored BN statistics, sub-networks with '
        + (
            f'BN statistics re-estimated on {recal} training images each.'
            if recal
            else "the stored (main network's) BN statistics."
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
        or f'{osp.basename(result["config"])}: sub-networks with '
        + (
            f'BN re-estimated on {recal} images'
            if recal
            else "the main network's BN statistics"
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


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    out_dir = args.out_dir or osp.join(
        'work_dirs', 'loafing', osp.splitext(osp.basename(args.config))[0]
    )
    result = run_loafing(args)
    paths = write_all(result, out_dir, args.plot, args.title)
    print(markdown_table(result))
    print('wrote ' + ', '.join(paths.values()))
    return result


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f'{PROG}: error: {e}', file=sys.stderr)
        sys.exit(1)
