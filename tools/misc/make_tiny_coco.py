"""Write a tiny COCO data set (instances, panoptic, person keypoints) drawn
from simple shapes, in COCO's own folder layout and formats, to try the
downstream configs without downloading COCO.

    python tools/misc/make_tiny_coco.py OUT_DIR [--num-train 4]
        [--num-val 2] [--size 128 96] [--seed 0]

It prints the ``--cfg-options`` that point an mmdet COCO config at OUT_DIR
(see docs/downstream.md). Needs numpy, Pillow and mmst's light import
(torch, MMEngine; no task library).
"""

import argparse
import shlex
from typing import List, Optional

from mmst.testing import tiny_data
from mmst.utils import run_tool


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write a tiny COCO data set (instances, panoptic, '
        'person keypoints) of simple shapes.'
    )
    parser.add_argument('out_dir', help='output folder (the data_root)')
    parser.add_argument('--num-train', type=int, default=4)
    parser.add_argument('--num-val', type=int, default=2)
    parser.add_argument(
        '--size',
        type=int,
        nargs=2,
        default=(128, 96),
        metavar=('W', 'H'),
        help='image width and height (default: 128 96)',
    )
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_train < 1 or args.num_val < 1:
        parser.error('--num-train and --num-val must be >= 1')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    paths = tiny_data.make_tiny_coco(
        args.out_dir,
        num_train=args.num_train,
        num_val=args.num_val,
        image_size=tuple(args.size),
        seed=args.seed,
    )
    print(
        f'wrote {args.num_train} train and {args.num_val} val images to '
        f'{args.out_dir}:'
    )
    for path in paths.values():
        print(f'  {path}')
    options = tiny_data.tiny_coco_cfg_options(args.out_dir, tuple(args.size))
    print('--cfg-options for mmdet COCO detection / instance configs:')
    print('  ' + ' '.join(shlex.quote(o) for o in options))
    return 0


if __name__ == '__main__':
    run_tool(main, 'make_tiny_coco')
