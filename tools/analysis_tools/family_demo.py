"""Serve test images with a classifier's depth family while a simulated
latency budget changes: per budget the family switches to the member with
the best measured metric within it (``DepthFamily.for_latency``), which
serves the next images one batch at a time. Prints per budget the member,
its latency in the family and as measured now, the switch time and the
accuracy so far. See docs/family.md, "Demo".

    python tools/analysis_tools/family_demo.py FAMILY.pth [--config CONFIG]
        [--budgets MS [MS ...]] [--images-per-budget 200] [--split test]
        [--threads N] [--device cpu]
"""

import argparse
from typing import List, Optional, Sequence

import torch

from mmst.analysis.menu import BudgetError
from mmst.apis import init_family
from mmst.apis.family_serve import default_budgets, serve_budgets
from mmst.utils import run_tool

PROG = 'family_demo'
HEADER = (
    '| step | budget ms | member | family ms | measured ms | choice us '
    '| switch us | images | accuracy % | so far % |\n'
    '|---|---|---|---|---|---|---|---|---|---|'
)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__.split('\n\n')[0]
    )
    p.add_argument('family', help='a family checkpoint (depth_menu --family)')
    p.add_argument('--config', help="its config (default: the menu's)")
    p.add_argument(
        '--budgets',
        nargs='+',
        type=float,
        metavar='MS',
        help='the latency budgets over time, ms (default: the slowest, '
        "median, fastest, median and slowest member's latency)",
    )
    p.add_argument(
        '--images-per-budget',
        type=int,
        default=200,
        help='images served under each budget (default 200)',
    )
    p.add_argument('--split', default='test', choices=('test', 'val'))
    p.add_argument(
        '--threads',
        type=int,
        help="torch threads (default: the menu's, so that its latencies "
        'apply)',
    )
    p.add_argument('--device', default='cpu', help='cpu | cuda | cuda:N')
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    args = parse_args(argv)
    family = init_family(args.config, args.family, args.device)
    threads = args.threads or family.menu['settings'].get('threads')
    if threads:
        torch.set_num_threads(threads)
    budgets = args.budgets or default_budgets(family)
    menu = family.menu
    print(
        f'{args.family}: {len(family.members)} members of {family.label}, '
        f'{family.metric} on the {menu["settings"]["split"]} split and '
        f'latency at batch {menu["latency_batch_size"]} as measured by the '
        f'depth menu on {menu["machine"].get("cpu") or menu["machine"]}; '
        f'serving on {args.device}, {torch.get_num_threads()} thread(s)'
    )
    print('budgets (ms): ' + ' '.join(f'{b:g}' for b in budgets))
    print(HEADER)
    steps = []
    for s in serve_budgets(
        family, budgets, args.images_per_budget, args.split
    ):
        steps.append(s)
        print(
            f'| {s["step"]} | {s["budget_ms"]:g} | `{s["member"]}` | '
            f'{s["menu_latency_ms"]:.3g} | {s["latency_ms"]:.3g} | '
            f'{s["choice_us"]:.0f} | {s["switch_us"]:.0f} | {s["images"]} | '
            f'{s["accuracy"]:.1f} '
            f'| {s["accuracy_so_far"]:.2f} |'
        )
    return steps


if __name__ == '__main__':
    run_tool(main, PROG, (ValueError, BudgetError, FileNotFoundError))
