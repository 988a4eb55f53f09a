"""What the analysis tools' command lines share: :func:`tool_parser`,
:func:`eval_kwargs` and :func:`mmst.utils.run_tool` (errors as one line,
exit status 1)."""

import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

from mmengine.config import DictAction

from mmst.converters.checkpoint_io import add_non_strict_argument
from mmst.subnet.space import PRESETS
from mmst.utils import run_tool  # noqa: F401  (the tools use it from here)

from .sweep import SPLITS


class _DeprecatedAlias(argparse.Action):
    """An old spelling of an option: a warning on stderr, then stored."""

    def __init__(self, *args, new: str = '', **kwargs) -> None:
        self.new = new
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        message = f'{option_string} is deprecated; use {self.new}'
        print(f'{parser.prog}: warning: {message}', file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_eval_args(
    p: argparse.ArgumentParser,
    checkpoints: str = 'many',
    subnets: bool = True,
    split: bool = True,
    no_bn_recal: bool = True,
    recal_help: str = "each sub-network's",
) -> None:
    """Add to ``p``: ``config``, the checkpoints (``'many'``: with
    ``--labels``; ``'one'``), ``--subnets`` and ``--space`` (``subnets``),
    ``--bn-recal-images`` (help: ``recal_help``'s statistics),
    ``--no-bn-recal`` (``no_bn_recal``), ``--split`` and ``--max-images``
    (``split``; deprecated ``--max-val-images``), ``--seed``,
    ``--non-strict`` and ``--cfg-options``."""
    add = p.add_argument
    add('config', help='config file (mmst or upstream)')
    if checkpoints == 'one':
        add('checkpoint', help='its checkpoint')
    else:
        text = 'checkpoints of models built by CONFIG (e.g. CT and ST++)'
        add('checkpoints', nargs='+', metavar='CHECKPOINT', help=text)
        add('--labels', nargs='+', help='series names, one per checkpoint')
    if subnets:
        text = (
            'all | smallest | largest | full, or blocks kept per stage '
            '("1,1,1" "2,2,2" ...); default: all members of the space'
        )
        add('--subnets', nargs='+', default=['all'], help=text)
        text = (
            "sub-network space that 'all' means (default: the ST "
            "model's space, or every depth of each stage of a plain model)"
        )
        add('--space', choices=PRESETS, help=text)
    text = (
        f'training images to re-estimate {recal_help} BN statistics '
        'on (0: the stored statistics)'
    )
    add('--bn-recal-images', type=int, default=2000, help=text)
    if no_bn_recal:
        text = (
            "evaluate sub-networks with the stored (main network's) "
            'BN statistics: shows BN mismatch, not loafing'
        )
        add('--no-bn-recal', action='store_true', help=text)
    if split:
        add('--split', choices=SPLITS, default='val')
        add('--max-images', type=int, help='evaluate on the first N images')
        text = 'deprecated spelling of --max-images'
        alias = dict(action=_DeprecatedAlias, new='--max-images', help=text)
        add('--max-val-images', dest='max_images', type=int, **alias)
    text = 'seed of the BN re-estimation images and augmentations'
    add('--seed', type=int, default=0, help=text)
    add_non_strict_argument(p)
    text = 'override config settings, key=value'
    add('--cfg-options', nargs='+', action=DictAction, help=text)


def check_eval_args(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    max_checkpoints: Optional[int] = None,
) -> argparse.Namespace:
    """Refuse more than ``max_checkpoints`` checkpoints (``p.error``: exit
    status 2; invalid values: the library's one line, exit status 1)."""
    given = len(getattr(args, 'checkpoints', ()))
    if max_checkpoints and given > max_checkpoints:
        most = f'at most {max_checkpoints}'
        most = 'one or two' if max_checkpoints == 2 else most
        p.error(f'give {most} checkpoints')
    return args


def eval_kwargs(args: argparse.Namespace, keys: Sequence[str] = ()) -> dict:
    """The keyword arguments of the analysis functions from the options of
    :func:`add_eval_args` (``bn_recal_images`` 0 with ``--no-bn-recal``,
    ``strict``: not ``--non-strict``), plus the attributes in ``keys``."""
    no_recal = getattr(args, 'no_bn_recal', False)
    kwargs = dict(
        bn_recal_images=0 if no_recal else args.bn_recal_images,
        seed=args.seed,
        cfg_options=args.cfg_options,
        strict=not args.non_strict,
    )
    for key in ('labels', 'subnets', 'space', 'split', 'max_images', *keys):
        if hasattr(args, key):
            kwargs[key] = getattr(args, key)
    return kwargs


def default_out_dir(tool: str, config: str) -> str:
    """``work_dirs/<tool>/<config file stem>``: a tool's output folder
    unless ``--out-dir`` is given."""
    return osp.join('work_dirs', tool, osp.splitext(osp.basename(config))[0])


def tool_parser(
    prog: str,
    description: str,
    outputs: bool = True,
    plot: str = '',
    **eval_options,
) -> argparse.ArgumentParser:
    """An analysis tool's parser: :func:`add_eval_args` (``eval_options``);
    with ``outputs``, ``--out-dir`` and ``--no-progress``; with ``plot``
    (the PNG file's stem), ``--plot`` and ``--title``."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    add_eval_args(p, **eval_options)
    if outputs:
        text = f'output folder (default: work_dirs/{prog}/<config name>)'
        p.add_argument('--out-dir', help=text)
        text = 'no progress bar'
        p.add_argument('--no-progress', action='store_true', help=text)
    if plot:
        text = f'PNG file (default: OUT_DIR/{plot}.png)'
        p.add_argument('--plot', help=text)
        p.add_argument('--title', help='plot title')
    return p
