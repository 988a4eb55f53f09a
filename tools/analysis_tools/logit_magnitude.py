"""Average L2 norm of the logits of the main network and its sub-networks
(ST++ paper, Fig. 4), for classifiers.

    python tools/analysis_tools/logit_magnitude.py CONFIG CHECKPOINT
        [CHECKPOINT2] [--labels CT ST++] [--subnets all | 1,1,1 ...]
        [--space PRESET] [--max-images N] [--bn-recal-images 2000]
        [--no-bn-recal] [--split val|test] [--seed 0] [--out-dir DIR]
        [--cfg-options k=v ...]

For every network, the raw logits (the head's output before any softmax or
ST++ logit normalisation) of each image of the val (or test) set, their L2
norm averaged over the images; the top-1 accuracy of the same pass is
recorded too. Sub-networks run with BN statistics re-estimated for them
(as in ``loafing.py``; ``--no-bn-recal``: the stored statistics). Writes
``logit_magnitude.json`` and ``logit_magnitude.png`` to ``--out-dir``.
"""

import argparse
import json
import os
import os.path as osp
import sys
import tempfile
from typing import Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.config import DictAction

from mmst.engine import preserved_bn_stats, recalibrate_bn, resolve_subnets
from mmst.models.algorithms.stimulative import unwrap_st
from mmst.models.tasks import infer_task
from mmst.subnet import ElasticDepth, format_subnet
from mmst.subnet.space import PRESETS, Subnet

PROG = 'logit_magnitude'
LOAFING = osp.join(osp.dirname(osp.abspath(__file__)), 'loafing.py')


def check_classifier(arch: nn.Module) -> None:
    """Raise a ValueError unless ``arch`` is an image classifier."""
    try:
        task = infer_task(arch)
    except TypeError:
        task = None
    if task != 'classification':
        raise ValueError(
            f'{PROG} needs a classifier (an mmpretrain ImageClassifier, '
            f'plain or inside mmst.StimulativeTraining); the config builds '
            f'{type(arch).__name__} (task: {task or "unknown"})'
        )


@torch.no_grad()
def logit_stats(
    model: nn.Module,
    elastic: ElasticDepth,
    subnet: Optional[Subnet],
    dataloader: Iterable,
    recal_loader: Optional[Iterable] = None,
    bn_recal_images: int = 0,
) -> Dict[str, float]:
    """Mean / std of the per-image L2 norm of the logits and the top-1
    accuracy of ``model`` run as ``subnet`` (None: the full network), with
    BN statistics re-estimated for it first when ``bn_recal_images > 0``;
    the model's BN statistics are restored afterwards."""
    arch = unwrap_st(model)
    total, total_sq, correct, count = 0.0, 0.0, 0, 0
    with preserved_bn_stats(arch), elastic.activate(subnet):
        if bn_recal_images:
            recalibrate_bn(arch, recal_loader, bn_recal_images)
        arch.eval()
        for data in dataloader:
            data = model.data_preprocessor(data, False)
            logits = arch(data['inputs'], data.get('data_samples'), 'tensor')
            if isinstance(logits, (tuple, list)):
                logits = logits[-1]
            logits = logits.float().flatten(1)
            norms = logits.norm(dim=1)
            total += norms.sum().item()
            total_sq += (norms**2).sum().item()
            count += norms.numel()
            samples = data.get('data_samples')
            if samples and 'gt_label' in samples[0]:
                labels = torch.cat([s.gt_label.view(-1)[:1] for s in samples])
                pred = logits.argmax(dim=1).cpu()
                correct += int((pred == labels.cpu()).sum())
    mean = total / max(count, 1)
    var = max(total_sq / max(count, 1) - mean**2, 0.0)
    return dict(
        mean_l2=mean,
        std_l2=var**0.5,
        top1=100.0 * correct / max(count, 1),
        images=count,
    )


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG,
        description='Average L2 norm of the logits of the main network and '
        'its sub-networks (classification)',
    )
    p.add_argument('config', help='config file of a classifier')
    p.add_argument('checkpoints', nargs='+', metavar='CHECKPOINT')
    p.add_argument('--labels', nargs='+', help='one name per checkpoint')
    p.add_argument(
        '--subnets',
        nargs='+',
        default=['all'],
        help='all | smallest | largest | full, or blocks kept per stage '
        '("1,1,1" ...); default: all members of the space',
    )
    p.add_argument('--space', choices=PRESETS, help='sub-network space')
    p.add_argument('--max-images', type=int, help='use the first N val images')
    p.add_argument('--bn-recal-images', type=int, default=2000)
    p.add_argument('--no-bn-recal', action='store_true')
    p.add_argument('--split', choices=('val', 'test'), default='val')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--out-dir',
        help='output folder (default: work_dirs/logit_magnitude/<config>)',
    )
    p.add_argument('--no-progress', action='store_true')
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
        p.error('--bn-recal-images must be >= 0')
    return args


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    labels = [c['label'] for c in result['checkpoints']]
    nets = result['networks']
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(nets) + 2), 4.2))
    width = 0.8 / len(labels)
    colors = ['tab:blue', 'tab:red', 'tab:green', 'tab:purple']
    for i, label in enumerate(labels):
        xs = [
            j + (i - (len(labels) - 1) / 2) * width for j in range(len(nets))
        ]
        ys = [n['stats'][label]['mean_l2'] for n in nets]
        errs = [n['stats'][label]['std_l2'] for n in nets]
        bars = ax.bar(
            xs,
            ys,
            width,
            yerr=errs,
            capsize=2,
            label=label,
            color=colors[i % len(colors)],
            alpha=0.8,
        )
        bars[0].set_hatch('//')  # the main network
    ax.set_xticks(range(len(nets)))
    ax.set_xticklabels(
        [n['name'] for n in nets], rotation=60, ha='right', fontsize=8
    )
    ax.set_ylabel('mean L2 norm of the logits')
    ax.set_title(
        f'{osp.basename(result["config"])}: logit magnitude '
        f'({result["eval_images"]} {result["split"]} images)',
        fontsize=10,
    )
    ax.grid(axis='y', alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location('mmst_tools_loafing', LOAFING)
    loafing = module_from_spec(spec)
    spec.loader.exec_module(loafing)

    specs = loafing.parse_subnet_specs(args.subnets)
    labels = loafing.check_labels(args.labels, args.checkpoints)
    recal_images = 0 if args.no_bn_recal else args.bn_recal_images
    cfg = loafing.load_config(
        args.config, args.cfg_options, args.split, args.max_images
    )
    with tempfile.TemporaryDirectory(prefix='mmst_logits_') as tmp:
        runner = loafing.build_runner(cfg, tmp)
        model = runner.model
        check_classifier(unwrap_st(model))
        elastic, space = loafing.model_space(model, args.space)
        subnets: List[Optional[Subnet]] = [None] + resolve_subnets(
            specs, space
        )
        loader = runner.build_dataloader(cfg.get(f'{args.split}_dataloader'))
        recal = (
            loafing.build_recal_loader(cfg, args.seed)
            if recal_images
            else None
        )
        networks = [
            dict(
                name='main' if s is None else format_subnet(s),
                subnet=elastic.stage_depths
                if s is None
                else [len(k) for k in s],
                bn_stats='re-estimated'
                if s is not None and recal_images
                else 'stored',
                stats={},
            )
            for s in subnets
        ]
        bar = loafing.progress(
            len(labels) * len(networks), PROG, args.no_progress
        )
        try:
            for label, path in zip(labels, args.checkpoints):
                loafing.load_weights(runner, path)
                for net, subnet in zip(networks, subnets):
                    bar.set_postfix_str(f'{label} {net["name"]}')
                    net['stats'][label] = logit_stats(
                        model,
                        elastic,
                        subnet,
                        loader,
                        recal,
                        recal_images if subnet is not None else 0,
                    )
                    bar.update(1)
        finally:
            bar.close()

    result = dict(
        config=osp.abspath(args.config),
        split=args.split,
        eval_images=len(loader.dataset),
        bn_recal_images=recal_images,
        seed=args.seed,
        checkpoints=[
            dict(label=label, path=osp.abspath(path))
            for label, path in zip(labels, args.checkpoints)
        ],
        networks=networks,
    )
    out_dir = args.out_dir or osp.join(
        'work_dirs',
        'logit_magnitude',
        osp.splitext(osp.basename(args.config))[0],
    )
    os.makedirs(out_dir, exist_ok=True)
    json_path = osp.join(out_dir, 'logit_magnitude.json')
    png_path = osp.join(out_dir, 'logit_magnitude.png')
    with open(json_path, 'w') as f:
        json.dump(result, f, indent=2)
    plot(result, png_path)

    header = '| network | ' + ' | '.join(
        f'{lb} mean L2 | {lb} top-1' for lb in labels
    )
    print(header + ' |')
    print('|---|' + '---|---|' * len(labels))
    for net in networks:
        cells = ' | '.join(
            f'{net["stats"][lb]["mean_l2"]:.3f} | '
            f'{net["stats"][lb]["top1"]:.2f}'
            for lb in labels
        )
        print(f'| {net["name"]} | {cells} |')
    print(f'wrote {json_path}, {png_path}')
    return result


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        print(f'{PROG}: error: {e}', file=sys.stderr)
        sys.exit(1)
