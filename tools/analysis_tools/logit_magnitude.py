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

from mmengine.config import DictAction

from mmst.analysis import (
    SPLITS,
    check_classifier,  # noqa: F401  (part of the tool's interface)
    logit_table,
    run_logit_magnitude,
    write_logit_magnitude,
)
from mmst.converters.checkpoint_io import add_non_strict_argument
from mmst.subnet.space import PRESETS

PROG = 'logit_magnitude'


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
    p.add_argument('--split', choices=SPLITS, default='val')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--out-dir',
        help='output folder (default: work_dirs/logit_magnitude/<config>)',
    )
    p.add_argument('--no-progress', action='store_true')
    add_non_strict_argument(p)
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


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    result = run_logit_magnitude(
        args.config,
        args.checkpoints,
        labels=args.labels,
        subnets=args.subnets,
        space=args.space,
        bn_recal_images=0 if args.no_bn_recal else args.bn_recal_images,
        split=args.split,
        max_images=args.max_images,
        seed=args.seed,
        cfg_options=args.cfg_options,
        show_progress=not args.no_progress,
        strict=not args.non_strict,
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
