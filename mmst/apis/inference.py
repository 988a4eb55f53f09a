"""The upstream libraries' own inference on what an mmst config trained.

An ST config's ``model`` is ``mmst.StimulativeTraining`` wrapping the
upstream model under ``architecture``; its checkpoints hold the upstream
model's plain keys. The libraries' inference APIs (``mmdet.apis
.init_detector``, ``mmseg.apis.init_model``, ``mmpose.apis.init_model``,
``mmpretrain.get_model`` and the inferencers) read ``cfg.model`` as the
upstream model itself, so they take :func:`plain_config` of an ST config
and the ST checkpoint (``docs/inference.md``).

Those APIs load the checkpoint non-strictly (MMEngine's
``load_checkpoint``: a checkpoint of another model gives warnings and a
partly untrained model). :func:`init_model` builds the same plain model
and loads the checkpoint strictly (:func:`load_checkpoint`).
"""

import copy
import os
from typing import Optional, Union

import torch.nn as nn
from mmengine.config import Config, ConfigDict

from mmst.converters.checkpoint_io import (  # noqa: F401  (load_checkpoint)
    load_checkpoint,
    load_state_dict,
    read_checkpoint,
    state_dict_of,
)

from .launch import ST_TYPES, is_cost_hook

# Loop configs of the plain model replacing mmst's loops.
PLAIN_LOOPS = {'val_cfg': 'ValLoop', 'test_cfg': 'TestLoop'}
# Keys of mmst's loops that MMEngine's ValLoop / TestLoop take too.
PLAIN_LOOP_KEYS = ('fp16',)


def _mmst_type(type_, registry) -> bool:
    """Whether a config's ``type`` names a module of mmst's ``registry``
    (``'mmst.X'``, an unscoped ``'X'`` mmst registers, or an mmst class)."""
    if isinstance(type_, str):
        scope, _, name = type_.rpartition('.')
        if scope not in ('', 'mmst'):
            return False
        registry.import_from_location()  # registration is lazy
        return name in registry.module_dict
    module = getattr(type_, '__module__', '') or ''
    return module == 'mmst' or module.startswith('mmst.')


def is_st_model(model_cfg: Optional[dict]) -> bool:
    """Whether ``model_cfg`` is an ``mmst.StimulativeTraining`` config."""
    if not isinstance(model_cfg, dict):
        return False
    type_ = model_cfg.get('type')
    if isinstance(type_, str):
        return type_ in ST_TYPES
    return getattr(type_, '__name__', None) == 'StimulativeTraining'


def plain_config(cfg_or_path: Union[str, os.PathLike, Config]) -> Config:
    """The config of the plain upstream model that an mmst config trains.

    What changes (a copy; the argument is left as it is):

    - ``model``: an ``mmst.StimulativeTraining`` model is replaced by its
      ``architecture``, which gets the data preprocessor the Runner would
      have given it (the architecture's own, else the ST model's, else the
      config's top-level ``data_preprocessor``). A plain model gets the
      top-level ``data_preprocessor`` when it has none, as the Runner
      does;
    - ``model_wrapper_cfg``: removed when it is mmst's
      (``mmst.STDistributedDataParallel``), so distributed runs use
      MMEngine's default wrapper;
    - ``val_cfg`` / ``test_cfg``: mmst's loops (``mmst.SubnetValLoop``)
      become MMEngine's ``ValLoop`` / ``TestLoop`` (``fp16`` kept, the
      sub-network keys dropped);
    - ``custom_hooks``: ``mmst.STCostHook`` (what ST training costs,
      which ``prepare_config`` adds) removed (the key too when no other
      hook is left).

    Everything else stays, ``custom_imports`` included: it imports mmst,
    which only registers modules, and a plain model may use them (e.g.
    ``mmst.ElasticResNet_CIFAR`` in the Fashion-MNIST configs). A config
    without mmst parts comes back unchanged but for the data preprocessor
    (which upstream APIs such as ``init_detector`` would otherwise ignore);
    the function is idempotent. ST checkpoints hold the architecture's
    plain keys and load into the returned config's model as they are.

    Args:
        cfg_or_path (str | PathLike | Config): A config file (read with
            ``Config.fromfile``, which runs its ``custom_imports``) or a
            loaded config.

    Returns:
        Config: The plain config, e.g. for
        ``mmdet.apis.init_detector(plain_config(path), checkpoint)``.

    Raises:
        TypeError: ``cfg_or_path`` is neither a path nor a Config, or the
            ST model's ``architecture`` is not a dict config.
        ValueError: The config has no ``model``, or the ST model has no
            ``architecture``.
    """
    import mmst  # noqa: F401  (its registries; modules register on lookup)
    from mmst.registry import LOOPS, MODEL_WRAPPERS

    if isinstance(cfg_or_path, (str, os.PathLike)):
        cfg = Config.fromfile(os.fspath(cfg_or_path))
    elif isinstance(cfg_or_path, Config):
        cfg = copy.deepcopy(cfg_or_path)
    else:
        raise TypeError(
            f'plain_config: cfg_or_path={type(cfg_or_path).__name__} is '
            'invalid; allowed: a config file path or an mmengine Config'
        )
    where = cfg.filename or 'the config'

    model = cfg.get('model')
    if not isinstance(model, dict):
        raise ValueError(
            f'plain_config: model={model!r} in {where} is invalid; allowed: '
            'a model config dict'
        )
    top_preprocessor = cfg.get('data_preprocessor')
    if is_st_model(model):
        architecture = model.get('architecture')
        if architecture is None:
            raise ValueError(
                f'plain_config: model.architecture is missing in {where} '
                f'(model.type={model.get("type")!r}); allowed: the upstream '
                'model config that mmst.StimulativeTraining wraps'
            )
        if not isinstance(architecture, dict):
            raise TypeError(
                'plain_config: model.architecture='
                f'{type(architecture).__name__} in {where} is invalid; '
                'allowed: a model config dict'
            )
        architecture = ConfigDict(copy.deepcopy(architecture))
        preprocessor = model.get('data_preprocessor') or top_preprocessor
        if preprocessor is not None:
            architecture.setdefault(
                'data_preprocessor', copy.deepcopy(preprocessor)
            )
        cfg.model = architecture
    elif top_preprocessor is not None:
        model.setdefault('data_preprocessor', copy.deepcopy(top_preprocessor))

    wrapper = cfg.get('model_wrapper_cfg')
    if isinstance(wrapper, dict) and _mmst_type(
        wrapper.get('type'), MODEL_WRAPPERS
    ):
        cfg.pop('model_wrapper_cfg')

    hooks = cfg.get('custom_hooks')
    if hooks and any(is_cost_hook(h) for h in hooks):
        kept = [h for h in hooks if not is_cost_hook(h)]
        if kept:
            cfg.custom_hooks = kept
        else:  # as before prepare_config added it
            cfg.pop('custom_hooks')

    for key, plain_type in PLAIN_LOOPS.items():
        loop = cfg.get(key)
        if isinstance(loop, dict) and _mmst_type(loop.get('type'), LOOPS):
            cfg[key] = dict(
                type=plain_type,
                **{k: loop[k] for k in PLAIN_LOOP_KEYS if k in loop},
            )
    return cfg


def init_model(
    config: Union[str, os.PathLike, Config],
    checkpoint: Optional[Union[str, os.PathLike]] = None,
    device: str = 'cpu',
    *,
    cfg_options: Optional[dict] = None,
    strict: bool = True,
) -> nn.Module:
    """The plain upstream model of a config (:func:`plain_config`: an ST
    config's ``architecture``) with ``checkpoint`` loaded strictly, in
    eval mode on ``device``.

    The model carries ``cfg`` (the plain config) and, when the checkpoint's
    ``meta`` has one, ``dataset_meta`` (class names ...), as the
    libraries' ``init_*`` functions set them, and the same as ``_config``
    and ``_dataset_meta``, as mmpretrain's ``get_model`` sets them (its
    inferencers, e.g. ``ImageClassificationInferencer(model)``, read
    those).

    Args:
        config (str | PathLike | Config): A config file or a loaded config
            (mmst ST config or upstream).
        checkpoint (str | PathLike, optional): Its checkpoint (an ST
            checkpoint holds the plain model's keys). None: initial
            weights.
        device (str): Where the model goes. Defaults to ``'cpu'``.
        cfg_options (dict, optional): Config overrides, applied before
            :func:`plain_config` (so they address
            ``model.architecture...`` of an ST config).
        strict (bool): Refuse a missing, unexpected or mis-shaped key.
            Defaults to True; False loads the keys that fit and logs the
            others.

    Returns:
        nn.Module: The model, e.g. an mmpretrain ``ImageClassifier``.

    Raises:
        CheckpointNotFoundError: ``checkpoint`` does not exist (a
            ``FileNotFoundError``).
        CheckpointError: ``checkpoint`` is unreadable (one line naming the
            file and what it is not; read before the model is built) or,
            when ``strict``, does not fit the model
            (:class:`~mmst.converters.CheckpointMismatchError`: up to 5
            keys of each kind, the checkpoint and the config); a
            ``ValueError``.
    """
    from mmengine.registry import init_default_scope

    from mmst.registry import MODELS

    if isinstance(config, (str, os.PathLike)):
        config = Config.fromfile(os.fspath(config))
    elif not isinstance(config, Config):
        raise TypeError(
            f'init_model: config={type(config).__name__} is invalid; '
            'allowed: a config file path or an mmengine Config'
        )
    if cfg_options:
        config = copy.deepcopy(config)
        config.merge_from_dict(cfg_options)
    cfg = plain_config(config)
    loaded = None
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        loaded = read_checkpoint(checkpoint)
    init_default_scope(cfg.get('default_scope') or 'mmst')
    model = MODELS.build(copy.deepcopy(cfg.model))
    if loaded is not None:
        load_state_dict(
            model,
            state_dict_of(loaded, source=checkpoint),
            strict=strict,
            checkpoint=checkpoint,
            config=cfg.filename,
        )
        meta = loaded.get('meta')
        if isinstance(meta, dict) and meta.get('dataset_meta') is not None:
            model.dataset_meta = model._dataset_meta = meta['dataset_meta']
    model.cfg = model._config = cfg
    return model.to(device).eval()
