"""The upstream libraries' own inference on what an mmst config trained.

An ST config's ``model`` is ``mmst.StimulativeTraining`` wrapping the
upstream model under ``architecture``; its checkpoints hold the upstream
model's plain keys. The libraries' inference APIs (``mmdet.apis
.init_detector``, ``mmseg.apis.init_model``, ``mmpose.apis.init_model``,
``mmpretrain.get_model`` and the inferencers) read ``cfg.model`` as the
upstream model itself, so they take :func:`plain_config` of an ST config
and the ST checkpoint (``docs/inference.md``).
"""

import copy
import os
from typing import Optional, Union

from mmengine.config import Config, ConfigDict

from .launch import ST_TYPES

# Loop configs of the plain model replacing mmst's loops.
PLAIN_LOOPS = {'val_cfg': 'ValLoop', 'test_cfg': 'TestLoop'}
# Keys of mmst's loops that MMEngine's ValLoop / TestLoop take too.
PLAIN_LOOP_KEYS = ('fp16',)


def _mmst_type(type_, registry) -> bool:
    """Whether a config's ``type`` names a module of mmst's ``registry``
    (``'mmst.X'``, an unscoped ``'X'`` mmst registers, or an mmst class)."""
    if isinstance(type_, str):
        scope, _, name = type_.rpartition('.')
        return scope in ('', 'mmst') and name in registry.module_dict
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
      sub-network keys dropped).

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
    import mmst  # noqa: F401  (registers the modules a plain model may use)
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

    for key, plain_type in PLAIN_LOOPS.items():
        loop = cfg.get(key)
        if isinstance(loop, dict) and _mmst_type(loop.get('type'), LOOPS):
            cfg[key] = dict(
                type=plain_type,
                **{k: loop[k] for k in PLAIN_LOOP_KEYS if k in loop},
            )
    return cfg
