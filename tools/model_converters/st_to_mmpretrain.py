"""Convert a Stimulative Training (ST / ST++) ResNet checkpoint released by
the authors into an mmpretrain ``ImageClassifier`` checkpoint.

    python tools/model_converters/st_to_mmpretrain.py SRC DST \\
        [--backbone-only] [--depth {50,101,152}] [--force] [--allow-pickle]

See docs/released_weights.md for the key mapping and how to use the result.
"""

import argparse
import sys
import warnings
from typing import List, Optional

from mmst.converters import st_weights


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert the Stimulative Training authors' ResNet "
        'checkpoint (module.features.* / module.classifier.0.*) to an '
        'mmpretrain ImageClassifier checkpoint (backbone.* / head.fc.*).'
    )
    parser.add_argument('src', help="the authors' checkpoint")
    parser.add_argument('dst', help='the mmpretrain checkpoint to write')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='write only backbone.* keys (for mmdet / mmseg / mmpose '
        "init_cfg=dict(type='Pretrained', prefix='backbone.'))",
    )
    parser.add_argument(
        '--depth',
        type=int,
        choices=sorted(st_weights.STAGE_BLOCKS),
        help='ResNet depth; inferred from the number of blocks if omitted',
    )
    parser.add_argument(
        '--force', action='store_true', help='overwrite an existing DST'
    )
    parser.add_argument(
        '--allow-pickle',
        action='store_true',
        help='if SRC cannot be loaded with torch.load(weights_only=True), '
        'load it with weights_only=False (only for files you trust)',
    )
    return parser.parse_args(argv)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Print a warning as one line, without the source location."""
    print(f'st_to_mmpretrain: warning: {message}', file=sys.stderr)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the converter; returns the exit status (0, or 1 on refusal)."""
    args = parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('always')
            warnings.showwarning = _show_warning
            meta = st_weights.convert_checkpoint(
                args.src,
                args.dst,
                depth=args.depth,
                backbone_only=args.backbone_only,
                force=args.force,
                allow_pickle=args.allow_pickle,
            )
    except st_weights.ConversionError as exc:
        print(f'st_to_mmpretrain: error: {exc}', file=sys.stderr)
        return 1
    what = (
        'backbone only'
        if meta['backbone_only']
        else f'backbone + head, {meta["num_classes"]} classes'
    )
    source = ', '.join(
        f'{k[len("source_") :]} {v}'
        for k, v in meta.items()
        if k.startswith('source_')
    )
    source = f' ({source})' if source else ''
    print(
        f'converted {args.src}{source} -> {args.dst}: '
        f'{meta["arch"]}, {what}, {meta["num_tensors"]} tensors'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
