"""The evaluation options shared by the analysis tools
(``tools/analysis_tools/loafing.py``, ``logit_magnitude.py``,
``depth_menu.py``, ``tools/model_converters/extract_subnet.py``), defined
once: :func:`add_eval_args` adds them to a parser, :func:`eval_kwargs`
turns the parsed arguments into the keyword arguments of
:func:`mmst.analysis.run_loafing` and the others."""

import argparse
import sys
from typing import Optional, Sequence

from mmengine.config import DictAction

from mmst.converters.checkpoint_io import add_non_strict_argument
from mmst.subnet.space import PRESETS

from .runner import SPLITS


class _DeprecatedAlias(argparse.Action):
    """An old spelling of an option: stores into the new one's ``dest``
    and prints a warning on stderr."""

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
    """Add the analysis tools' evaluation options to ``p``: ``config``,
    the checkpoint(s), ``--subnets`` and ``--space`` (when ``subnets``),
    ``--bn-recal-images`` (and ``--no-bn-recal``), ``--split``,
    ``--max-images`` (old spelling ``--max-val-images``: a deprecation
    warning), ``--seed``, ``--non-strict`` and ``--cfg-options``.

    Args:
        p (ArgumentParser): The tool's parser.
        checkpoints (str): ``'many'``: ``checkpoints`` (one or more);
            ``'one'``: ``checkpoint``.
        subnets (bool): Add ``--subnets`` / ``--space``.
        split (bool): Add ``--split`` and ``--max-images``.
        no_bn_recal (bool): Add ``--no-bn-recal``.
        recal_help (str): Whose BN statistics ``--bn-recal-images``
            re-estimates, for its help.
    """
    p.add_argument('config', help='config file (mmst or upstream)')
    if checkpoints == 'one':
        p.add_argument('checkpoint', help='its checkpoint')
    else:
        p.add_argument(
            'checkpoints',
            nargs='+',
            metavar='CHECKPOINT',
            help='checkpoints of models built by CONFIG (e.g. CT and ST++)',
        )
        p.add_argument(
            '--labels', nargs='+', help='series names, one per checkpoint'
        )
    if subnets:
        p.add_argument(
            '--subnets',
            nargs='+',
            default=['all'],
            help='all | smallest | largest | full, or blocks kept per stage '
            '("1,1,1" "2,2,2" ...); default: all members of the space',
        )
        p.add_argument(
            '--space',
            choices=PRESETS,
            help="sub-network space that 'all' means (default: the ST "
            "model's space, or every depth of each stage of a plain model)",
        )
    p.add_argument(
        '--bn-recal-images',
        type=int,
        default=2000,
        help=f'training images to re-estimate {recal_help} BN statistics '
        'on (0: the stored statistics)',
    )
    if no_bn_recal:
        p.add_argument(
            '--no-bn-recal',
            action='store_true',
            help="evaluate sub-networks with the stored (main network's) "
            'BN statistics: shows BN mismatch, not loafing',
        )
    if split:
        p.add_argument('--split', choices=SPLITS, default='val')
        p.add_argument(
            '--max-images', type=int, help='evaluate on the first N images'
        )
        p.add_argument(
            '--max-val-images',
            dest='max_images',
            type=int,
            action=_DeprecatedAlias,
            new='--max-images',
            help='deprecated spelling of --max-images',
        )
    p.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the BN re-estimation images and augmentations',
    )
    add_non_strict_argument(p)
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value',
    )


def check_eval_args(
    p: argparse.ArgumentParser,
    args: argparse.Namespace,
    max_checkpoints: Optional[int] = None,
) -> argparse.Namespace:
    """Refuse what argparse cannot: more than ``max_checkpoints``
    checkpoints, ``--bn-recal-images < 0`` (``p.error``: exit status 2)."""
    if max_checkpoints and len(getattr(args, 'checkpoints', ())) > (
        max_checkpoints
    ):
        p.error(
            'give one or two checkpoints'
            if max_checkpoints == 2
            else f'give at most {max_checkpoints} checkpoints'
        )
    if args.bn_recal_images < 0:
        p.error(
            f'--bn-recal-images {args.bn_recal_images} is invalid; '
            'allowed: an integer >= 0'
        )
    return args


def eval_kwargs(args: argparse.Namespace, keys: Sequence[str] = ()) -> dict:
    """The keyword arguments of the analysis functions
    (:func:`mmst.analysis.run_loafing`, ``run_logit_magnitude``,
    ``build_menu``, ``export_subnet``) from arguments of
    :func:`add_eval_args`: ``bn_recal_images`` (0 with ``--no-bn-recal``),
    ``seed``, ``cfg_options``, ``strict`` and, where the parser has them,
    ``labels``, ``subnets``, ``space``, ``split``, ``max_images``; plus
    the attributes named in ``keys`` as they are."""
    kwargs = dict(
        bn_recal_images=0
        if getattr(args, 'no_bn_recal', False)
        else args.bn_recal_images,
        seed=args.seed,
        cfg_options=args.cfg_options,
        strict=not args.non_strict,
    )
    for key in ('labels', 'subnets', 'space', 'split', 'max_images', *keys):
        if hasattr(args, key):
            kwargs[key] = getattr(args, key)
    return kwargs
