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
import os.path as osp
from typing import Any, Iterator, List, Optional, Tuple

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
    MMST_TRANSFORMS.import_from_location()  # registration is lazy
    classes = set(MMST_TRANSFORMS.module_dict.values())
    for key in DATALOADER_KEYS:
        for path, item in _walk(cfg.get(key), key):
            kind = item.get('type')
            if isinstance(kind, str) and kind.startswith('mmst.'):
                kind = TRANSFORMS.get(kind)
            if kind in classes:
                with setting_prefix(path):
                    TRANSFORMS.build(item)


#: The file name of mmst's pretrained ST++ ResNet-50 backbone, which every
#: downstream config loads (``configs/_base_/st_backbone.py``:
#: ``checkpoints/r50_stpp_backbone.pth``); mmst does not download it.
ST_BACKBONE_FILE = 'r50_stpp_backbone.pth'
#: Initialiser types (MMEngine's ``PretrainedInit``) that load a file.
PRETRAINED_INITS = ('Pretrained', 'PretrainedInit')


def is_local_checkpoint(path: str) -> bool:
    """Whether MMEngine reads the checkpoint ``path`` from the local file
    system (its ``CheckpointLoader`` picks the local loader): False for
    URLs and model-zoo names (``https://``, ``s3://``, ``torchvision://``,
    ``open-mmlab://``, ``mmcls://`` ...), which are downloaded or read
    from elsewhere."""
    from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

    if '://' in path:
        return False
    return CheckpointLoader._get_checkpoint_loader(path) is load_from_local


def _option(key: str) -> str:
    """``key`` as ``--cfg-options`` writes it (``a[0].b`` -> ``a.0.b``)."""
    return key.replace('[', '.').replace(']', '')


def pretrained_files(cfg: Config) -> List[Tuple[str, str, str]]:
    """The local checkpoint files a training run of ``cfg`` loads before
    its first iteration: ``(key, path, fix)`` for every
    ``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` anywhere in
    ``model`` (MMEngine loads it when ``Runner.train`` initialises the
    weights, resuming or not), every ``pretrained=PATH`` string in
    ``model`` (mmseg / mmdet backbones turn it into such an init), and
    ``load_from`` when not resuming (``resume=True`` loads it as the
    checkpoint to resume, checked by ``tools/train.py`` itself). ``fix``
    is the ``--cfg-options`` item that drops the file. URLs and model-zoo
    names are left out (:func:`is_local_checkpoint`).

    Args:
        cfg (Config): The full config.

    Returns:
        list[tuple[str, str, str]]: The dotted key (``model.backbone.
        init_cfg.checkpoint``), the path as written, and the override
        that trains without it (``model.backbone.init_cfg=None``).
    """
    found = []
    for path, item in _walk(cfg.get('model'), 'model'):
        checkpoint = item.get('checkpoint')
        if _type_name(item.get('type')) in PRETRAINED_INITS and isinstance(
            checkpoint, str
        ):
            fix = (
                f'{_option(path)}=None'
                if not path.endswith(']')
                else f'the entry {path} removed from its list'
            )
            found.append((f'{path}.checkpoint', checkpoint, fix))
        pretrained = item.get('pretrained')
        if isinstance(pretrained, str):
            key = f'{path}.pretrained'
            found.append((key, pretrained, f'{_option(key)}=None'))
    load_from = cfg.get('load_from')
    if isinstance(load_from, str) and not cfg.get('resume'):
        found.append(('load_from', load_from, 'load_from=None'))
    return [f for f in found if is_local_checkpoint(f[1])]


def _missing_file_message(key: str, path: str, fix: str) -> str:
    """``<rest>`` of the error for a missing checkpoint file."""
    where = osp.abspath(osp.expanduser(path))
    rest = (
        f'={path!r}: no such file ({where}); MMEngine would stop with '
        'FileNotFoundError when it loads the weights, after the Runner '
        'has written to the work dir. '
    )
    if osp.basename(path) == ST_BACKBONE_FILE:
        rest += (
            "This is mmst's ST++ ImageNet ResNet-50 backbone "
            '(configs/_base_/st_backbone.py), which mmst does not '
            "download: docs/released_weights.md says where the authors' "
            'checkpoint is and how to convert it (tools/model_converters/'
            f'st_to_mmpretrain.py SRC {path} --backbone-only). '
        )
    if key == 'load_from':
        drop = (
            f"start from the model's own initialisation (--cfg-options {fix})"
        )
    elif fix.startswith('the entry'):
        drop = f'train without it ({fix})'
    else:
        drop = f'train the layers from scratch (--cfg-options {fix})'
    return (
        rest + f'Fix: put the file at {path}, point the key elsewhere '
        f'(--cfg-options {_option(key)}=PATH), or {drop}'
    )


def check_pretrained_files(cfg: Config) -> None:
    """Refuse a training config whose local pretrained checkpoint files
    (:func:`pretrained_files`) do not exist, before the Runner is built.

    Raises:
        mmst.settings.SettingError: ``<key>='<path>': no such file ...``
            naming the key, the path and the fix (for mmst's own
            ``r50_stpp_backbone.pth``: docs/released_weights.md); further
            missing files are listed after the first.
    """
    missing = [
        f
        for f in pretrained_files(cfg)
        if not osp.isfile(osp.expanduser(f[1]))
    ]
    if not missing:
        return
    key, path, fix = missing[0]
    rest = _missing_file_message(key, path, fix)
    if len(missing) > 1:
        rest += '; also missing: ' + ', '.join(
            f'{k}={p!r}' for k, p, _ in missing[1:]
        )
    raise SettingError(key, rest)


#: Normalisation types that make synchronised BN (``SyncBN``: torch's
#: ``SyncBatchNorm``; ``MMSyncBN``: mmcv's), which trains only on GPUs.
SYNC_BN_TYPES = ('SyncBN', 'MMSyncBN', 'SyncBatchNorm')


def _type_name(kind: Any) -> str:
    """The registered name of a config ``type`` (a string, possibly
    scoped, or a class)."""
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    return name.rsplit('.', 1)[-1]


def sync_bn_settings(cfg: Config) -> List[Tuple[str, Any]]:
    """Where ``cfg`` asks for synchronised BN: ``(key, value)`` for
    MMEngine's runner key ``sync_bn`` (``'torch'`` | ``'mmcv'``: every BN
    converted in a distributed run, any library) and for the ``type`` of
    every ``SyncBN`` / ``MMSyncBN`` normalisation dict in ``model``
    (``norm_cfg``: mmseg's backbone, ``decode_head`` and
    ``auxiliary_head``; mmdet's, mmpose's and mmpretrain's backbones,
    necks and heads), e.g. ``('model.decode_head.norm_cfg.type',
    'SyncBN')``."""
    found = []
    if cfg.get('sync_bn') is not None:
        found.append(('sync_bn', cfg.sync_bn))
    for path, item in _walk(cfg.get('model'), 'model'):
        if _type_name(item.get('type')) in SYNC_BN_TYPES:
            found.append((f'{path}.type', item['type']))
    return found


def check_sync_bn(
    cfg: Config, launcher: Optional[str] = None, device: Optional[str] = None
) -> None:
    """Refuse synchronised BN (:func:`sync_bn_settings`) in a distributed
    training run without GPUs: torch's ``SyncBatchNorm`` refuses CPU
    tensors in training (a single-process run is fine: MMEngine turns
    SyncBN into BN there).

    Args:
        cfg (Config): The full config.
        launcher (str, optional): ``'none' | 'pytorch' | 'slurm' |
            'mpi'``; None: ``cfg.launcher`` (set by
            :func:`mmst.apis.prepare_config`), else ``'none'``.
        device (str, optional): Where the Runner puts the model; None:
            MMEngine's ``get_device()``.

    Raises:
        mmst.settings.SettingError: Naming every key that asks for
            SyncBN, with the fix for each form (``--cfg-options
            KEY=BN``, ``sync_bn=None``), launching on GPUs, or
            ``--launcher none``.
    """
    launcher = launcher or cfg.get('launcher') or 'none'
    if launcher == 'none':
        return
    if device is None:
        from mmengine.device import get_device

        device = get_device()
    if device != 'cpu':
        return
    found = sync_bn_settings(cfg)
    if not found:
        return
    norms = [k for k, _ in found if k != 'sync_bn']
    fixes = [f'{_option(k)}=BN' for k in norms]
    if any(k == 'sync_bn' for k, _ in found):
        fixes.append('sync_bn=None')
    listed = ', '.join(f'{k}={v!r}' for k, v in found[1:])
    rest = (
        f'={found[0][1]!r}'
        + (f', {listed}' if listed else '')
        + ": synchronised BatchNorm trains only on GPUs (torch's and "
        "mmcv's SyncBatchNorm refuse CPU tensors), and this run is "
        f'distributed (--launcher {launcher}) without a GPU (device '
        f'{device!r}). Fix: plain BN '
        f'(--cfg-options {" ".join(fixes)})'
    )
    shared = [
        k
        for k, v in cfg.items()
        if k.endswith('norm_cfg')
        and isinstance(v, dict)
        and _type_name(v.get('type')) in SYNC_BN_TYPES
    ]
    if shared and norms:
        rest += (
            f"; the config file's top-level {', '.join(shared)} (upstream "
            'configs share one across these keys) is copied '
            'into them when the file is read, so override the keys '
            "above, or set it to dict(type='BN', requires_grad=True) in "
            'the file'
        )
    rest += (
        '; or launch on GPUs; or train in one process (--launcher none: '
        'MMEngine turns SyncBN into BN there)'
    )
    raise SettingError(found[0][0], rest)


def check_subnet_schedule(cfg: Config) -> None:
    """Refuse ``model.subnet_schedule.by_epoch=True`` with an
    iteration-based training loop (``train_cfg.by_epoch=False``, or a
    ``train_cfg.type`` that is MMEngine's ``IterBasedTrainLoop`` or a
    subclass): there the runner's epoch stays 0, so a ``begin`` > 0 in
    epochs would never start the sub-network passes. Call it in the
    config's default scope (``train_cfg.type`` is looked up there).

    Raises:
        mmst.settings.SettingError: ``model.subnet_schedule.by_epoch=True
            ...`` naming the ``train_cfg`` key and what is allowed.
    """
    from mmengine.runner import IterBasedTrainLoop

    model = cfg.get('model')
    schedule = (
        model.get('subnet_schedule') if isinstance(model, dict) else None
    )
    train_cfg = cfg.get('train_cfg')
    if not (
        isinstance(schedule, dict)
        and schedule.get('by_epoch') is True
        and isinstance(train_cfg, dict)
    ):
        return
    if 'type' in train_cfg:
        loop = train_cfg['type']
        loop = LOOPS.get(loop) if isinstance(loop, str) else loop
        if not (
            isinstance(loop, type) and issubclass(loop, IterBasedTrainLoop)
        ):
            return
        how = f'train_cfg.type={train_cfg["type"]!r}'
    elif train_cfg.get('by_epoch') is False:
        how = 'train_cfg.by_epoch=False'
    else:
        return
    raise SettingError(
        'model.subnet_schedule.by_epoch',
        f'=True counts begin and warmup in epochs, but {how} trains by '
        "iterations (MMEngine's IterBasedTrainLoop), where the epoch stays "
        '0; allowed: by_epoch=False (begin and warmup in iterations), or '
        'an epoch-based train_cfg',
    )


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


def check_config(
    cfg: Config, build_model: bool = True, training: bool = True
) -> Config:
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
    - ``training=True``: the local checkpoint files the run loads before
      its first iteration exist (:func:`check_pretrained_files`:
      ``init_cfg=dict(type='Pretrained', checkpoint=PATH)`` and
      ``pretrained=PATH`` in ``model``, ``load_from`` when not resuming;
      URLs and model-zoo names are not checked). Testing
      (``tools/test.py``) passes False: MMEngine's ``Runner.test`` never
      initialises the weights (only ``Runner.train`` does), every weight
      comes from the tested checkpoint, so a missing pretrained file
      does not matter there. And no synchronised BN (``sync_bn``,
      ``norm_cfg=dict(type='SyncBN')``) in a distributed run without GPUs
      (:func:`check_sync_bn`; testing runs BN in eval mode, which
      SyncBN does on CPU too). And ``model.subnet_schedule.by_epoch=True``
      only with an epoch-based ``train_cfg``
      (:func:`check_subnet_schedule`).

    Errors name the full dotted key: ``model.distill.temperature=0 is
    invalid; allowed: a number > 0``; an upstream component's error gets a
    note ``while building the setting model.architecture``.

    Args:
        cfg (Config): The full config, after ``--cfg-options`` and
            :func:`mmst.apis.prepare_config` (mmst and the task library
            registered); not modified.
        build_model (bool): Build the model to run its checks. Defaults
            to True.
        training (bool): The config is about to train: check the
            pretrained files too. Defaults to True.

    Returns:
        Config: ``cfg``.

    Raises:
        mmst.settings.SettingError: A ValueError naming the key, the value
            and what is allowed.
        Exception: Whatever building the model raises (with the note).
    """
    if training:
        check_pretrained_files(cfg)
        check_sync_bn(cfg)
    scope = cfg.get('default_scope')
    with DefaultScope.overwrite_default_scope(scope), seeded_rng(0):
        loops = _loop_args(cfg)
        for key, args in loops:
            with setting_prefix(key):
                check_subnet_val_args(**args)
        _check_transforms(cfg)
        if training:
            check_subnet_schedule(cfg)
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
