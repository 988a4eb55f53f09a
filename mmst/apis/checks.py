"""mmst's config checks, run before the Runner is built.

MMEngine's Runner writes to the work dir (the config copy, the log folder)
when it is built, and builds the validation loop only when training
starts; so a bad ``val_cfg`` used to fail after the config copy of the
previous run in that work dir had been overwritten. ``tools/train.py`` and
``tools/test.py`` call :func:`check_config` first: every check of mmst's
components runs there, nothing is written, and the errors name the full
dotted key of the config (``model.distill.temperature``,
``val_cfg.bn_recal_images``).
"""

import copy
import inspect
from typing import Any, Iterator, List, Tuple

import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import LOOPS, MODELS, TRANSFORMS, DefaultScope

from mmst.engine.bn_recal import seeded_rng
from mmst.engine.subnet_eval import (
    SubnetValLoop,
    check_subnet_val_args,
    elastic_of,
)
from mmst.registry import TRANSFORMS as MMST_TRANSFORMS
from mmst.settings import SettingError, setting_prefix

#: Config keys of loops that may be a SubnetValLoop.
LOOP_KEYS = ('val_cfg', 'test_cfg')
#: Config keys whose dataset pipelines hold transforms.
DATALOADER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _loop_args(cfg: Config) -> List[Tuple[str, dict]]:
    """``(key, arguments)`` of each SubnetValLoop of ``cfg``
    (``val_cfg``, ``test_cfg``); unknown arguments are refused."""
    loops = []
    for key in LOOP_KEYS:
        loop = cfg.get(key)
        if not isinstance(loop, dict) or 'type' not in loop:
            continue
        cls = loop['type']
        if isinstance(cls, str):
            cls = LOOPS.get(cls)
        if not (isinstance(cls, type) and issubclass(cls, SubnetValLoop)):
            continue
        # ``_scope_``: MMEngine's mark on a typed dict of a scoped base
        args = {k: v for k, v in loop.items() if k not in ('type', '_scope_')}
        defaults = {
            name: p.default
            for name, p in inspect.signature(SubnetValLoop).parameters.items()
            if name not in ('runner', 'dataloader', 'evaluator')
        }
        unknown = sorted(set(args) - set(defaults))
        if unknown:
            raise SettingError(
                key,
                f' has unknown keys {unknown} for {cls.__name__}; '
                f'allowed: {", ".join(defaults)}',
            )
        loops.append((key, {**defaults, **args}))
    return loops


def _walk(value: Any, path: str) -> Iterator[Tuple[str, dict]]:
    """Every dict inside ``value`` with its dotted path."""
    if isinstance(value, dict):
        yield path, value
        for k, v in value.items():
            yield from _walk(v, f'{path}.{k}')
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f'{path}[{i}]')


def _check_transforms(cfg: Config) -> None:
    """Build each of mmst's transforms in the dataloaders' configs (cheap:
    no data is read), so their argument checks run now."""
    classes = set(MMST_TRANSFORMS.module_dict.values())
    for key in DATALOADER_KEYS:
        for path, item in _walk(cfg.get(key), key):
            kind = item.get('type')
            if isinstance(kind, str) and kind.startswith('mmst.'):
                kind = TRANSFORMS.get(kind)
            if kind in classes:
                with setting_prefix(path):
                    TRANSFORMS.build(item)


def build_config_model(cfg: Config) -> torch.nn.Module:
    """The model of ``cfg`` as the Runner builds it (the config's
    top-level ``data_preprocessor`` merged in), in the config's default
    scope; errors name ``model.<key>``."""
    model_cfg = copy.deepcopy(ConfigDict(cfg.model))  # builders mutate
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    scope = cfg.get('default_scope')
    with DefaultScope.overwrite_default_scope(scope):
        with setting_prefix('model', model_cfg):
            return MODELS.build(model_cfg)


def check_config(cfg: Config, build_model: bool = True) -> Config:
    """Run every check of mmst's components on ``cfg``, before anything is
    written (call it before building the Runner, on every rank).

    - ``val_cfg`` / ``test_cfg`` of type ``mmst.SubnetValLoop``: its
      arguments (unknown keys; ``subnets`` specs; ``bn_recal_images``,
      ``recal_seed`` integers, not bools), through the function the loop
      itself calls (:func:`mmst.engine.subnet_eval.check_subnet_val_args`);
      with the model, the ``subnets`` resolved in its space. Whether the
      training data holds ``bn_recal_images`` images needs the data set,
      which is not read here: the loop checks it when the Runner builds
      it, before the first training iteration.
    - ``model`` (``build_model=True``): built once as the Runner would
      build it, so that every build-time check of ``StimulativeTraining``
      and its parts runs (on CPU, the random generators left as they were;
      a tiny Fashion-MNIST ResNet-20 ST model takes about 0.1 s, an
      mmdet Faster R-CNN R-50 about 1 s), then freed.
    - mmst's transforms (``type='mmst.UniformAugment'`` ...) in the
      dataloaders' pipelines: built (no data read).

    Errors name the full dotted key: ``model.distill.temperature=0 is
    invalid; allowed: a number > 0``; an upstream component's error gets a
    note ``while building the setting model.architecture``.

    Args:
        cfg (Config): The full config, after ``--cfg-options`` and
            :func:`mmst.apis.prepare_config` (mmst and the task library
            registered); not modified.
        build_model (bool): Build the model to run its checks. Defaults
            to True.

    Returns:
        Config: ``cfg``.

    Raises:
        mmst.settings.SettingError: A ValueError naming the key, the value
            and what is allowed.
        Exception: Whatever building the model raises (with the note).
    """
    scope = cfg.get('default_scope')
    with DefaultScope.overwrite_default_scope(scope), seeded_rng(0):
        loops = _loop_args(cfg)
        for key, args in loops:
            with setting_prefix(key):
                check_subnet_val_args(**args)
        _check_transforms(cfg)
        model = None
        if build_model and cfg.get('model'):
            model = build_config_model(cfg)
        space = elastic_of(model)[1] if model is not None and loops else None
        if space is not None:
            for key, args in loops:
                with setting_prefix(key):
                    check_subnet_val_args(**args, space=space)
        del model
    return cfg
