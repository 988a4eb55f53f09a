"""The depth menu: every sub-network of a trained elastic model with its
metric (BN statistics re-estimated for it), parameters, FLOPs and latency
on this machine; the Pareto frontier; one member chosen for a budget and
exported. See docs/depth_menu.md.

    python tools/analysis_tools/depth_menu.py CONFIG CHECKPOINT [CKPT ...]
        [--labels CT ST++] [--subnets all | smallest largest | 1,1,1 ...]
        [--space default|space1..space7] [--bn-recal-images 2000]
        [--split val|test] [--metric KEY] [--max-images N] [--seed 0]
        [--device cpu|cuda] [--batch-sizes 1 128] [--latency-batch-size B]
        [--latency-runtime eager|onnxruntime] [--warmup 5] [--repeats 30]
        [--threads N]
        [--onnxruntime | --no-onnxruntime]
        [--max-latency-ms MS] [--max-flops N] [--min-metric V]
        [--select LABEL] [--export DIR [--onnx]]
        [--family OUT.pth [--family-members SPEC ...] [--onnx]]
        [--out-dir DIR]
        [--plot FILE] [--title TEXT] [--force] [--no-progress]
        [--non-strict] [--cfg-options k=v ...]
"""

import argparse
import os.path as osp
from typing import Optional, Sequence

from mmst.analysis.cli import eval_kwargs, run_tool, tool_parser
from mmst.analysis.menu import (
    BudgetError,
    MenuSettings,
    build_menu,
    choose_member,
    export_member,
    markdown_table,
    write_outputs,
)
from mmst.deploy.family import write_family
from mmst.deploy.family_onnx import export_family_checkpoint_onnx

PROG = 'depth_menu'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = tool_parser(
        PROG,
        'Metric, parameters, FLOPs and latency of every sub-network of an '
        'elastic model; Pareto frontier; budget choice and export',
        plot='menu',
        no_bn_recal=False,
        recal_help="each member's",
    )
    p.add_argument(
        '--metric', help="metric key (default: the evaluator's first)"
    )
    p.add_argument(
        '--device',
        default='cpu',
        help='cpu | cuda | cuda:N: where evaluation and latency run',
    )
    p.add_argument(
        '--batch-sizes',
        nargs='+',
        type=int,
        default=[1],
        help='latency batch sizes (default: 1)',
    )
    p.add_argument(
        '--latency-batch-size',
        type=int,
        help='batch size of the latency that the frontier, the plot and '
        '--max-latency-ms use (default: the first of --batch-sizes)',
    )
    p.add_argument(
        '--latency-runtime',
        choices=('eager', 'onnxruntime'),
        default='eager',
        help='whose latency the frontier, the plot and --max-latency-ms use '
        '(default: eager PyTorch)',
    )
    text = 'untimed runs before timing'
    p.add_argument('--warmup', type=int, default=5, help=text)
    text = 'timed runs (median, IQR)'
    p.add_argument('--repeats', type=int, default=30, help=text)
    p.add_argument(
        '--threads', type=int, help='torch.set_num_threads for the run'
    )
    ort = p.add_mutually_exclusive_group()
    ort.add_argument(
        '--onnxruntime',
        dest='ort',
        action='store_true',
        default=None,
        help='also time ONNX Runtime (default: when installed, on cpu)',
    )
    ort.add_argument('--no-onnxruntime', dest='ort', action='store_false')
    p.add_argument(
        '--max-latency-ms',
        type=float,
        help='choose: latency (ms, at --latency-batch-size) at most this',
    )
    p.add_argument(
        '--max-flops', type=float, help='choose: FLOPs per image at most this'
    )
    p.add_argument(
        '--min-metric', type=float, help='choose: metric at least this'
    )
    p.add_argument(
        '--select',
        help='checkpoint label to choose from (default: the last checkpoint)',
    )
    p.add_argument(
        '--export',
        metavar='DIR',
        help='write the chosen member (the best one without bounds) as a '
        'config + checkpoint',
    )
    text = (
        'with --export: also an ONNX file; with --family: also OUT_onnx/, '
        'one ONNX file per member and one graph with the member as an input '
        '(docs/family.md)'
    )
    p.add_argument('--onnx', action='store_true', help=text)
    p.add_argument(
        '--family',
        metavar='OUT.pth',
        help='write a depth-family checkpoint of the --select checkpoint: '
        'the weights once, each member with its BN statistics and '
        'measurements (docs/family.md)',
    )
    p.add_argument(
        '--family-members',
        nargs='+',
        metavar='SPEC',
        help='with --family: these members (default: the latency and FLOPs '
        'Pareto frontiers)',
    )
    text = (
        'restart a menu made with other settings (and overwrite an export '
        'or a family)'
    )
    p.add_argument('--force', action='store_true', help=text)
    args = p.parse_args(argv)
    if args.onnx and not (args.export or args.family):
        p.error('--onnx needs --export DIR or --family OUT.pth')
    if args.family_members and not args.family:
        p.error('--family-members needs --family OUT.pth')
    return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    settings = MenuSettings(
        args.config,
        args.checkpoints,
        progress=not args.no_progress,
        **eval_kwargs(
            args,
            keys='metric batch_sizes latency_batch_size latency_runtime '
            'warmup repeats device threads ort out_dir force'.split(),
        ),
    )
    out_dir = settings.out_dir
    menu = build_menu(settings)
    budget = dict(
        max_latency_ms=args.max_latency_ms,
        max_flops=args.max_flops,
        min_metric=args.min_metric,
    )
    chosen = None
    if (
        args.export
        or args.select
        or any(v is not None for v in budget.values())
    ):
        label = args.select or menu['checkpoints'][-1]['label']
        try:
            member = choose_member(menu, label, **budget)
        except BudgetError:
            write_outputs(menu, out_dir, args.plot, args.title)
            raise
        chosen = (label, member)
        menu['choice'] = dict(
            label=label,
            member=member['name'],
            subnet=member['subnet'],
            **budget,
        )
    paths = write_outputs(menu, out_dir, args.plot, args.title, chosen)
    print(markdown_table(menu, chosen[1] if chosen else None))
    if chosen is not None:
        label, member = chosen
        print(f'chosen: {label} {member["name"]}')
    if args.export:
        summary = export_member(
            menu,
            label,
            member,
            args.export,
            onnx=args.onnx,
            force=args.force,
            cfg_options=args.cfg_options,
        )
        files = [summary['config'], summary['checkpoint']]
        files += [summary['onnx']] if 'onnx' in summary else []
        menu['choice']['export'] = summary
        write_outputs(menu, out_dir, args.plot, args.title, chosen)
        print('exported ' + ', '.join(files))
        if 'onnx_parity' in summary:
            print(f'ONNX parity: {summary["onnx_parity"]}')
    if args.family:
        family = write_family(
            menu,
            args.family,
            args.select,
            args.family_members,
            force=args.force,
        )
        menu['family'] = family
        names = ' '.join(family['members'])
        print(f'wrote family {family["path"]} ({family["label"]}: {names})')
        if args.onnx:
            out = osp.splitext(args.family)[0] + '_onnx'
            onnx = export_family_checkpoint_onnx(
                args.family, out, None, force=args.force
            )
            worst = max(
                p['max_abs_diff']
                for m in onnx['parity'].values()
                for p in m.values()
            )
            family['onnx'] = onnx
            print(
                f'wrote {len(onnx["member_files"])} member files and the '
                f'one graph {onnx["one_graph"]} (max |ONNX Runtime - '
                f'PyTorch| = {worst:.3g} over the members)'
            )
    print('wrote ' + ', '.join(paths.values()))
    return menu


if __name__ == '__main__':
    run_tool(
        main,
        PROG,
        (
            ValueError,
            FileNotFoundError,
            FileExistsError,
            TypeError,
            ImportError,
        ),
    )
