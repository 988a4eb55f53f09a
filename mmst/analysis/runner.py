"""Building what the analysis tools evaluate: the config, the Runner (as
``tools/test.py`` builds it), the checkpoint, the evaluation loader and
evaluator, the seeded BN re-estimation loader and the sub-network space.

Shared by ``tools/analysis_tools/loafing.py``, ``logit_magnitude.py``,
``tools/model_converters/extract_subnet.py`` and the depth menu
(``docs/analysis.md``)."""

import copy
import logging
import sys
import uuid
from contextlib import contextmanager
from typing import Iterator, Optional, Tuple

import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmst.apis import prepare_config
from mmst.converters.checkpoint_io import load_runner_checkpoint
from mmst.engine import (
    build_recal_loader,  # noqa: F401 (re-exported)
    elastic_of,
)
from mmst.stack import load_config as stack_load_config
from mmst.subnet import ElasticDepth, SubnetSpace

#: The evaluation splits a config may name.
SPLITS = ('val', 'test')


def load_config(
    config: str,
    cfg_options: Optional[dict] = None,
    split: str = 'val',
    max_images: Optional[int] = None,
) -> Config:
    """Read ``config`` (:func:`mmst.stack.load_config`, the reader of
    ``tools/train.py`` and ``tools/test.py``), apply ``cfg_options``, keep
    the first ``max_images`` images of the ``split`` set, and register mmst
    and the config's task library (:func:`mmst.apis.prepare_config`).

    Args:
        config (str): Config file (an mmst ST config or an upstream one).
        cfg_options (dict, optional): ``--cfg-options`` overrides.
        split (str): ``'val'`` or ``'test'``: which dataloader / evaluator
            to use.
        max_images (int, optional): Evaluate on the first N images
            (``dataset.indices = N``).

    Returns:
        Config: The config.

    Raises:
        ValueError: Unknown ``split``, the config has no such dataloader /
            evaluator, or ``max_images < 1``.
        StackError: A task library the config's base configs need is not
            installed.
    """
    if split not in SPLITS:
        raise ValueError(
            f'split={split!r} is invalid; allowed: ' + ' | '.join(SPLITS)
        )
    cfg = stack_load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    loader = cfg.get(f'{split}_dataloader')
    if not loader or not cfg.get(f'{split}_evaluator'):
        raise ValueError(
            f'{config} has no {split}_dataloader / {split}_evaluator; '
            f'use --split {"test" if split == "val" else "val"}'
        )
    if max_images is not None:
        if (
            isinstance(max_images, bool)
            or not isinstance(max_images, int)
            or max_images < 1
        ):
            raise ValueError(
                f'max images={max_images!r} is invalid; allowed: an '
                'integer >= 1'
            )
        loader.dataset.indices = max_images
    prepare_config(cfg)
    return cfg


@contextmanager
def quiet_logs(level: int = logging.WARNING) -> Iterator[None]:
    """Raise the current MMLogger's level for the duration."""
    logger = MMLogger.get_current_instance()
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


def build_runner(cfg: Config, work_dir: str) -> Runner:
    """The config's Runner (as ``tools/test.py`` builds it) with its logs
    in ``work_dir``; nothing is loaded or run, the model is in eval mode.

    Args:
        cfg (Config): The config (copied, not modified).
        work_dir (str): The Runner's work folder (e.g. a temporary one).

    Returns:
        Runner: The runner.
    """
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = work_dir
    cfg.load_from = None
    cfg.resume = False
    cfg.log_level = 'WARNING'
    cfg.launcher = 'none'
    # A unique name: the logger and visualizer are per-name singletons, and
    # an earlier runner's (in a removed temporary folder) must not be reused.
    cfg.experiment_name = f'mmst_analysis_{uuid.uuid4().hex[:8]}'
    visualizer = cfg.get('visualizer')
    if isinstance(visualizer, dict):
        # upstream configs name it ('visualizer'), which would hand every
        # later runner of this process the first one's (removed) folder
        visualizer['name'] = cfg.experiment_name
    runner = (
        Runner.from_cfg(cfg)
        if 'runner_type' not in cfg
        else RUNNERS.build(cfg)
    )
    runner.model.eval()
    return runner


def load_weights(runner: Runner, checkpoint: str, strict: bool = True) -> dict:
    """Load ``checkpoint`` into the runner's model, strictly unless told
    otherwise (:func:`mmst.converters.checkpoint_io.load_runner_checkpoint`:
    the runner's hooks see the checkpoint first, as in MMEngine's
    ``Runner.load_checkpoint``); the model is left in eval mode.

    Args:
        runner (Runner): A runner from :func:`build_runner`.
        checkpoint (str): The checkpoint file.
        strict (bool): Refuse a missing, unexpected or mis-shaped key.
            Defaults to True; False (``--non-strict``) loads the keys that
            fit and logs the others.

    Returns:
        dict: The loaded checkpoint (``meta``, ``state_dict`` ...).

    Raises:
        CheckpointNotFoundError: ``checkpoint`` does not exist (a
            ``FileNotFoundError``).
        CheckpointError: ``checkpoint`` is not a readable checkpoint (one
            line), or ``strict`` and it does not fit the model
            (:class:`~mmst.converters.CheckpointMismatchError`: the first
            keys of each kind, the checkpoint, the config); a
            ``ValueError``.
    """
    ckpt = load_runner_checkpoint(runner, checkpoint, strict=strict)
    runner.model.eval()
    return ckpt


def model_space(
    model: nn.Module, preset: Optional[str] = None
) -> Tuple[ElasticDepth, SubnetSpace]:
    """The elastic backbone and sub-network space of ``model``: the ST
    model's space, or the default space of a plain model's backbone;
    ``preset`` (``'default'``, ``'space1'`` ...) overrides the depths.

    Raises:
        TypeError: The backbone's residual stages cannot be found (declare
            ``elastic_stages``).
        ValueError: ``preset`` is not a preset of this backbone.
    """
    elastic, space = elastic_of(model)
    if preset is not None:
        space = SubnetSpace(elastic.stage_depths, preset)
    return elastic, space


def build_evaluation(runner: Runner, cfg: Config, split: str = 'val'):
    """The ``split`` dataloader and evaluator of the config (the
    evaluator's ``dataset_meta`` set from the dataset).

    Returns:
        tuple: ``(DataLoader, Evaluator)``.
    """
    loader = runner.build_dataloader(cfg.get(f'{split}_dataloader'))
    return loader, build_evaluator(runner, cfg, split, loader.dataset)


def build_evaluator(runner: Runner, cfg: Config, split: str, dataset):
    """A new evaluator of the config's ``split``, its ``dataset_meta`` set
    from ``dataset``."""
    evaluator = runner.build_evaluator(cfg.get(f'{split}_evaluator'))
    metainfo = getattr(dataset, 'metainfo', None)
    if metainfo is not None:
        evaluator.dataset_meta = metainfo
    return evaluator


def input_shape_of(model: nn.Module, dataloader) -> Tuple[int, ...]:
    """(C, H, W) of the first preprocessed input of ``dataloader``."""
    data = next(iter(dataloader))
    data = model.data_preprocessor(data, False)
    return tuple(data['inputs'].shape[1:])


def check_bn_recal_images(value) -> int:
    """``value`` if it is a valid ``--bn-recal-images`` (an integer >= 0;
    0: keep the stored BN statistics).

    Raises:
        ValueError: Not an integer >= 0 (the message names the value).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f'--bn-recal-images {value!r} is invalid; allowed: an integer '
            '>= 0 (0: the stored BN statistics)'
        )
    return value


def progress(total: int, desc: str, disable: bool = False):
    """A tqdm progress bar on stderr."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=disable,
    )
