"""What tools/train.py and tools/test.py do to a config before building the
Runner: register mmst and the config's task library, and make distributed
runs work on GPUs (nccl) and on CPU-only machines (gloo)."""

import importlib
import logging
import os
from typing import Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
ST_TYPES = ('mmst.StimulativeTraining', 'StimulativeTraining')
TORCH_DDP_TYPES = ('MMDistributedDataParallel', 'DistributedDataParallel')


def register_scope_modules(cfg: Config) -> None:
    """Import mmst and register the modules of the config's default scope
    (mmpretrain, mmdet, mmseg or mmpose).

    Raises:
        mmst.stack.StackError: the installed packages cannot run the scope's
            task (a missing library, mmcv-lite where mmcv.ops is needed, a
            version out of range), before any of them is imported; the
            message names the fix command (:func:`mmst.stack.check_stack`).
    """
    import mmst  # noqa: F401
    from mmst.stack import check_config_stack

    check_config_stack(cfg)
    scope = cfg.get('default_scope')
    if scope and scope != 'mmst':
        utils = importlib.import_module(f'{scope}.utils')
        utils.register_all_modules(init_default_scope=False)


def _backend(cfg: Config) -> str:
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    backend = dist_cfg.get(
        'backend', 'nccl' if torch.cuda.is_available() else 'gloo'
    )
    if backend == 'nccl' and not torch.cuda.is_available():
        print_log(
            "env_cfg.dist_cfg.backend='nccl' needs GPUs and this machine "
            "has none: using 'gloo' (set backend='gloo' in the config to "
            'silence this)',
            'current',
            logging.WARNING,
        )
        backend = 'gloo'
    dist_cfg['backend'] = backend
    return backend


def prepare_config(cfg: Config, launcher: str = 'none') -> Config:
    """Set up ``cfg`` for ``launcher`` before ``Runner.from_cfg``.

    - ST models get mmst's data-parallel wrapper when none is configured;
    - on a machine without GPUs, the process group is initialised with gloo
      here (MMEngine's own ``init_dist`` calls CUDA and fails there) and
      torch DDP wrappers are built with ``device_ids=None``.

    Args:
        cfg (Config): The full config (modified in place).
        launcher (str): ``'none' | 'pytorch' | 'slurm' | 'mpi'``.

    Returns:
        Config: ``cfg``.
    """
    if launcher not in LAUNCHERS:
        raise ValueError(
            f'--launcher={launcher!r} is invalid; allowed: '
            + ' | '.join(LAUNCHERS)
        )
    cfg.launcher = launcher
    register_scope_modules(cfg)
    if launcher == 'none':
        return cfg

    model_type = cfg.model.get('type') if cfg.get('model') else None
    if cfg.get('model_wrapper_cfg') is None and model_type in ST_TYPES:
        cfg.model_wrapper_cfg = dict(type='mmst.STDistributedDataParallel')
    backend = _backend(cfg)
    if torch.cuda.is_available():
        return cfg  # MMEngine's init_dist and DDP defaults are right

    wrapper = cfg.get('model_wrapper_cfg')
    if wrapper is None:
        cfg.model_wrapper_cfg = dict(
            type='MMDistributedDataParallel', device_ids=None
        )
    elif str(wrapper.get('type', '')).split('.')[-1] in TORCH_DDP_TYPES:
        wrapper['device_ids'] = None
    if not dist.is_initialized():
        if launcher != 'pytorch':
            raise RuntimeError(
                f'--launcher {launcher} on a machine without GPUs is not '
                'supported; use --launcher pytorch (torchrun / '
                'tools/dist_train.sh)'
            )
        dist.init_process_group(backend)
        print_log(
            f'initialised {backend} process group: rank '
            f'{dist.get_rank()} of {dist.get_world_size()} '
            f'(LOCAL_RANK={os.environ.get("LOCAL_RANK")})',
            'current',
        )
    return cfg


def maybe_destroy_process_group(launcher: Optional[str]) -> None:
    if launcher not in (None, 'none') and dist.is_initialized():
        dist.destroy_process_group()
