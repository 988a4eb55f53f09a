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
import os.path as osp
import sys
from typing import Optional, Sequence

from mmst.analysis import markdown_table, run_loafing, write_all
from mmst.analysis.cli import add_eval_args, check_eval_args, eval_kwargs

PROG = 'loafing'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG,
        description='Accuracy of the main network and its sub-networks '
        '(the loafing view), each sub-network with its own re-estimated '
        'BN statistics',
    )
    add_eval_args(p)
    p.add_argument(
        '--metric',
        help='metric key to tabulate and plot (default: the first one the '
        'evaluator returns, e.g. accuracy/top1)',
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
    return check_eval_args(p, p.parse_args(argv), max_checkpoints=2)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    out_dir = args.out_dir or osp.join(
        'work_dirs', 'loafing', osp.splitext(osp.basename(args.config))[0]
    )
    result = run_loafing(
        args.config,
        args.checkpoints,
        metric=args.metric,
        show_progress=not args.no_progress,
        **eval_kwargs(args),
    )
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
