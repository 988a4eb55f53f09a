"""Average L2 norm of the logits of the main network and its sub-networks
(ST++ paper, Fig. 4), for classifiers.

    python tools/analysis_tools/logit_magnitude.py CONFIG CHECKPOINT
        [CHECKPOINT2] [--labels CT ST++] [--subnets all | 1,1,1 ...]
        [--space PRESET] [--max-images N] [--bn-recal-images 2000]
        [--no-bn-recal] [--split val|test] [--seed 0] [--out-dir DIR]
        [--non-strict] [--cfg-options k=v ...]

For every network, the raw logits (the head's output before any softmax or
ST++ logit normalisation) of each image of the val (or test) set, their L2
norm averaged over the images; the top-1 accuracy of the same pass is
recorded too. Sub-networks run with BN statistics re-estimated for them
(as in ``loafing.py``; ``--no-bn-recal``: the stored statistics). Writes
``logit_magnitude.json`` and ``logit_magnitude.png`` to ``--out-dir``.
Checkpoints are loaded strictly (``--non-strict``: as in ``loafing.py``).

A command line over :func:`mmst.analysis.run_logit_magnitude`
(``docs/analysis.md``).
"""

import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

from mmst.analysis import (
    check_classifier,  # noqa: F401  (part of the tool's interface)
    logit_table,
    run_logit_magnitude,
    write_logit_magnitude,
)
from mmst.analysis.cli import add_eval_args, check_eval_args, eval_kwargs

PROG = 'logit_magnitude'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG,
        description='Average L2 norm of the logits of the main network and '
        'its sub-networks (classification)',
    )
    add_eval_args(p)
    p.add_argument(
        '--out-dir',
        help='output folder (default: work_dirs/logit_magnitude/<config>)',
    )
    p.add_argument('--no-progress', action='store_true')
    return check_eval_args(p, p.parse_args(argv), max_checkpoints=2)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    result = run_logit_magnitude(
        args.config,
        args.checkpoints,
        show_progress=not args.no_progress,
        **eval_kwargs(args),
    )
    out_dir = args.out_dir or osp.join(
        'work_dirs',
        'logit_magnitude',
        osp.splitext(osp.basename(args.config))[0],
    )
    paths = write_logit_magnitude(result, out_dir)
    print(logit_table(result), end='')
    print(f'wrote {paths["json"]}, {paths["png"]}')
    return result


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileNotFoundError) as e:
        print(f'{PROG}: error: {e}', file=sys.stderr)
        sys.exit(1)
