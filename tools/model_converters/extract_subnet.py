"""Extract a sub-network of a trained elastic network as a standalone
model.

    python tools/model_converters/extract_subnet.py CONFIG CHECKPOINT \\
        OUT_DIR --subnet 2,3,5,2 [--bn-recal-images 2000] [--seed 0] \\
        [--onnx [--onnx-images 8]] [--force] [--non-strict] \\
        [--cfg-options k=v ...]

Writes

- ``OUT_DIR/subnet.pth``: the sub-network's weights with the plain model's
  keys (``backbone.layer1.0.conv1.weight`` ...), without the keys of the
  skipped blocks, and with BN statistics re-estimated for the sub-network
  on ``--bn-recal-images`` training images (0: keep the stored ones);
- ``OUT_DIR/config.py``: the plain config (an ST model replaced by its
  ``architecture``, MMEngine's loops) with the model's backbone replaced
  by ``mmst.SubnetBackbone``: the original backbone, fixed at the
  sub-network (``subnet=[...]``);
- with ``--onnx``, ``OUT_DIR/subnet.onnx``: the model's ``mode='tensor'``
  forward, checked against PyTorch on ``--onnx-images`` test images
  (within float32 rounding of the outputs' magnitude, docs/analysis.md;
  classifiers, segmentors, pose estimators).

Any backbone mmst trains elastically: ResNets (mmpretrain, mmdet, mmseg,
mmpose), MobileNetV3, VisionTransformer, or one with ``elastic_stages``.
``--subnet`` takes blocks kept per stage or ``smallest | largest | full``.

The BN re-estimation is exactly that of
``tools/analysis_tools/loafing.py`` (same images, augmentations and order
for the same ``--seed`` and ``--bn-recal-images``), so

    python tools/test.py OUT_DIR/config.py OUT_DIR/subnet.pth

reports the number the loafing table gives for this sub-network. A command
line over :func:`mmst.deploy.export_subnet` (``docs/analysis.md``).
"""

import argparse
from typing import Optional, Sequence

from mmst.analysis.cli import eval_kwargs, run_tool, tool_parser
from mmst.deploy import export_subnet

PROG = 'extract_subnet'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = tool_parser(
        PROG,
        'Write a sub-network of a trained elastic network as a standalone '
        'config + checkpoint (and ONNX)',
        outputs=False,
        checkpoints='one',
        subnets=False,
        split=False,
        no_bn_recal=False,
        recal_help="the sub-network's",
    )
    p.add_argument('out_dir', help='output folder')
    p.add_argument(
        '--subnet',
        required=True,
        help='blocks kept per stage (the first ones), e.g. 2,3,5,2, or '
        "smallest | largest | full (of the model's space)",
    )
    p.add_argument(
        '--onnx',
        action='store_true',
        help='also write OUT_DIR/subnet.onnx and check it against PyTorch',
    )
    p.add_argument(
        '--onnx-images',
        type=int,
        default=8,
        help='test images of the ONNX parity check',
    )
    p.add_argument(
        '--force', action='store_true', help='overwrite existing outputs'
    )
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    summary = export_subnet(
        args.config,
        args.checkpoint,
        args.subnet,
        args.out_dir,
        force=args.force,
        onnx=args.onnx,
        onnx_images=args.onnx_images,
        **eval_kwargs(args),
    )
    s = summary
    depths = ','.join(map(str, s['subnet']))
    flops_text = (
        f', {s["flops"] / 1e6:.2f} of {s["full_flops"] / 1e6:.2f} MFLOPs'
        if s['flops'] and s['full_flops']
        else ''
    )
    used = s['bn_recal_images']
    lines = [
        f'sub-network [{depths}]: {s["params"] / 1e6:.3f} of '
        f'{s["full_params"] / 1e6:.3f} M parameters{flops_text}; '
        f'{s["dropped_keys"]} tensors of skipped blocks dropped; BN '
        + (
            f'statistics re-estimated on {used} training images'
            if used
            else 'statistics as stored'
        ),
        f'wrote {s["checkpoint"]}',
        f'wrote {s["config"]}',
    ]
    if 'onnx' in s:
        parity = s['onnx_parity']
        lines.append(
            f'wrote {s["onnx"]} (max |ONNX Runtime - PyTorch| = '
            f'{parity["max_abs_diff"]:.3g} on {parity["images"]} test '
            'images)'
        )
    lines.append(f'test: python tools/test.py {s["config"]} {s["checkpoint"]}')
    print('\n'.join(lines))
    return summary


if __name__ == '__main__':
    run_tool(
        main,
        PROG,
        (ValueError, FileExistsError, FileNotFoundError, ImportError),
    )
