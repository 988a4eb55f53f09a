"""The loafing table: accuracy of the main network and of its sub-networks,
each sub-network with its own re-estimated BN statistics.

    python tools/analysis_tools/loafing.py CONFIG CHECKPOINT [CHECKPOINT2]
        [--labels CT ST++] [--subnets all | smallest largest | 1,1,1 ...]
        [--space default|space1..space7] [--bn-recal-images 2000]
        [--no-bn-recal] [--split val|test] [--metric KEY]
        [--max-images N] [--seed 0] [--out-dir DIR] [--plot FILE]
        [--non-strict] [--cfg-options k=v ...]

Writes ``loafing.json``, ``loafing.csv``, ``loafing.md`` and ``loafing.png``
(accuracy vs FLOPs and vs blocks kept) to ``--out-dir``. With two
checkpoints (one config: e.g. a conventionally trained and an ST model of
the same architecture) both series are shown side by side.

The main network is evaluated with its stored BN statistics (the number
``tools/test.py`` gives); every sub-network, the full-depth member of the
space included, with BN statistics re-estimated for it on
``--bn-recal-images`` training images (the same images, with the same
augmentations, for every sub-network, seeded with ``--seed``; the loader
``SubnetValLoop`` uses too). ``tools/model_converters/extract_subnet.py``
re-estimates exactly the same statistics, so its standalone sub-network
reproduces the number in this table.

Checkpoints are loaded strictly: an unreadable file, or a missing,
unexpected or mis-shaped key, is an error naming the file (and the keys);
``--non-strict`` loads the keys that fit and logs the others.

A command line over :func:`mmst.analysis.run_loafing` and
:func:`mmst.analysis.write_all` (``docs/analysis.md``).
"""

import argparse
from typing import Optional, Sequence

from mmst.analysis import markdown_table, run_loafing, write_all
from mmst.analysis.cli import (
    check_eval_args,
    default_out_dir,
    eval_kwargs,
    run_tool,
    tool_parser,
)

PROG = 'loafing'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = tool_parser(
        PROG,
        'Accuracy of the main network and its sub-networks (the loafing '
        'view), each sub-network with its own re-estimated BN statistics',
        plot='loafing',
    )
    p.add_argument(
        '--metric',
        help='metric key to tabulate and plot (default: the first one the '
        'evaluator returns, e.g. accuracy/top1)',
    )
    return check_eval_args(p, p.parse_args(argv), max_checkpoints=2)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    result = run_loafing(
        args.config,
        args.checkpoints,
        metric=args.metric,
        show_progress=not args.no_progress,
        **eval_kwargs(args),
    )
    out_dir = args.out_dir or default_out_dir(PROG, args.config)
    paths = write_all(result, out_dir, args.plot, args.title)
    print(markdown_table(result))
    print('wrote ' + ', '.join(paths.values()))
    return result


if __name__ == '__main__':
    run_tool(main, PROG, (ValueError, FileNotFoundError, TypeError))
