"""What tools/train.py and tools/test.py do to a config before building the
Runner: register mmst and the config's task library, check
``env_cfg.dist_cfg`` and start the process group with it (nccl on GPUs,
gloo on CPU-only machines), and explain a collective that failed because
another rank stopped or died."""

import datetime
import importlib
import inspect
import logging
import math
import numbers
import os
from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.logging import print_log

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')
ST_TYPES = ('mmst.StimulativeTraining', 'StimulativeTraining')
TORCH_DDP_TYPES = ('MMDistributedDataParallel', 'DistributedDataParallel')
#: ``init_backend`` values of MMEngine's ``init_dist`` (GPUs only but
#: 'torch': on CPU mmst starts the process group with torch itself).
INIT_BACKENDS = ('torch', 'deepspeed', 'colossalai')


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


def dist_cfg_keys(launcher: str = 'none') -> tuple:
    """The keys ``env_cfg.dist_cfg`` may hold for ``launcher``: those of
    MMEngine's ``init_dist`` (``backend``, ``init_backend``; ``port`` with
    ``slurm``) and the public arguments of torch's ``init_process_group``
    (``timeout``, ``init_method``, ``world_size``, ``rank``, ``store``,
    ``group_name``, ``pg_options``, ``device_id``, ...). ``'none'``: all
    of them (the config may be launched either way)."""
    torch_keys = [
        name
        for name in inspect.signature(dist.init_process_group).parameters
        if not name.startswith('_') and name != 'backend'
    ]
    port = ['port'] if launcher in ('slurm', 'none') else []
    return tuple(['backend', 'init_backend', *port, *torch_keys])


def _backends() -> tuple:
    # 'undefined' and 'fake' (torch's test backend) are not for training
    return tuple(
        b for b in dist.Backend.backend_list if b not in ('undefined', 'fake')
    )


def _check_backend(backend) -> None:
    """``backend`` is a name torch knows (``'gloo'``) or a per-device list
    (``'cpu:gloo,cuda:nccl'``); an MPI backend needs a torch built with
    MPI."""
    allowed = _backends()
    names = None
    if isinstance(backend, str) and backend:
        parts = [p.strip() for p in backend.lower().split(',')]
        if len(parts) == 1 and ':' not in parts[0]:
            names = parts
        elif all(p.count(':') == 1 for p in parts):
            names = [p.split(':')[1] for p in parts]
    if names is None or any(n not in allowed for n in names):
        raise ValueError(
            f'env_cfg.dist_cfg.backend={backend!r} is not a '
            'torch.distributed backend; allowed: '
            + ' | '.join(allowed)
            + " (or one per device, e.g. 'cpu:gloo,cuda:nccl')"
        )
    if 'mpi' in names and not dist.is_mpi_available():
        raise ValueError(
            f'env_cfg.dist_cfg.backend={backend!r}: this torch is built '
            'without MPI (torch.distributed.is_mpi_available() is False); '
            "allowed here: 'gloo', or 'nccl' on GPUs"
        )


def check_dist_cfg(cfg: Config, launcher: str = 'none') -> dict:
    """Check ``cfg.env_cfg.dist_cfg`` (the process group's settings, as
    MMEngine's ``init_dist`` takes them) before anything starts.

    - keys: :func:`dist_cfg_keys` of ``launcher``;
    - ``backend``: a ``torch.distributed`` backend (``gloo``, ``nccl``,
      ...) or one per device (``'cpu:gloo,cuda:nccl'``);
    - ``timeout``: seconds (int or float, finite, > 0), how long a
      collective (all-reduce, broadcast, barrier) waits for the other
      ranks before it fails; MMEngine turns it into a ``timedelta``;
    - ``init_backend``: one of :data:`INIT_BACKENDS`; only ``'torch'`` on a
      machine without GPUs.

    Args:
        cfg (Config): The full config (not modified).
        launcher (str): ``'none' | 'pytorch' | 'slurm' | 'mpi'``.

    Returns:
        dict: ``env_cfg.dist_cfg`` (empty when the config has none).

    Raises:
        ValueError: the first bad key or value, naming the key, the value
            and what is allowed.
    """
    env_cfg = cfg.get('env_cfg') or {}
    dist_cfg = env_cfg.get('dist_cfg')
    if dist_cfg is None:
        return {}
    if not isinstance(dist_cfg, dict):
        raise ValueError(
            f'env_cfg.dist_cfg={dist_cfg!r} is not a dict; allowed: '
            "dict(backend='nccl' | 'gloo', timeout=SECONDS, ...)"
        )
    allowed = dist_cfg_keys(launcher)
    for key in dist_cfg:
        if key not in allowed:
            where = (
                f' with --launcher {launcher}' if launcher != 'none' else ''
            )
            hint = (
                ' (env_cfg.dist_cfg.port is for --launcher slurm; torchrun '
                'takes --master_port, tools/dist_train.sh PORT=...)'
                if key == 'port'
                else ''
            )
            raise ValueError(
                f'env_cfg.dist_cfg.{key}={dist_cfg[key]!r} is not a setting '
                f'of the process group{where}; allowed keys: '
                + ', '.join(allowed)
                + hint
            )
    if 'backend' in dist_cfg:
        _check_backend(dist_cfg['backend'])
    if dist_cfg.get('timeout') is not None:  # None: torch's default
        timeout = dist_cfg['timeout']
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, numbers.Real)
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ValueError(
                f'env_cfg.dist_cfg.timeout={timeout!r} is not a time in '
                'seconds; allowed: a number > 0 (int or float), e.g. '
                "timeout=1800, or None for torch's default"
            )
    init_backend = dist_cfg.get('init_backend', 'torch')
    if init_backend not in INIT_BACKENDS:
        raise ValueError(
            f'env_cfg.dist_cfg.init_backend={init_backend!r} is invalid; '
            'allowed: ' + ' | '.join(map(repr, INIT_BACKENDS))
        )
    if (
        launcher != 'none'
        and init_backend != 'torch'
        and not torch.cuda.is_available()
    ):
        raise ValueError(
            f'env_cfg.dist_cfg.init_backend={init_backend!r} needs GPUs '
            "(MMEngine's init_dist) and this machine has none; allowed "
            "here: 'torch'"
        )
    return dist_cfg


def process_group_kwargs(dist_cfg: dict) -> dict:
    """``env_cfg.dist_cfg`` as keyword arguments of torch's
    ``init_process_group``, as MMEngine's ``init_dist`` passes them:
    ``timeout`` (seconds) becomes a ``datetime.timedelta``; ``backend``,
    ``init_backend`` and ``port`` (taken by ``init_dist`` itself) are
    left out."""
    kwargs = {
        k: v
        for k, v in dict(dist_cfg).items()
        if k not in ('backend', 'init_backend', 'port')
    }
    if kwargs.get('timeout') is not None:
        kwargs['timeout'] = datetime.timedelta(seconds=kwargs['timeout'])
    return kwargs


def _backend(cfg: Config) -> str:
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    backend = dist_cfg.get(
        'backend', 'nccl' if torch.cuda.is_available() else 'gloo'
    )
    if backend == 'nccl' and not torch.cuda.is_available():
        print_log(
            f'env_cfg.dist_cfg.backend={backend!r} needs GPUs and this '
            "machine has none: using 'gloo' (set backend='gloo' in the "
            'config to silence this)',
            'current',
            logging.WARNING,
        )
        backend = 'gloo'
    dist_cfg['backend'] = backend
    return backend


def init_process_group(cfg: Config, launcher: str) -> None:
    """Start the process group of a distributed ``launcher`` with
    ``env_cfg.dist_cfg`` (checked by :func:`check_dist_cfg`), unless one
    is running already.

    - On GPUs: MMEngine's ``init_dist(launcher, **dist_cfg)`` after its
      ``set_multi_processing(**env_cfg.mp_cfg)``, exactly what the
      Runner's ``setup_env`` would do, only before the Runner is built;
      the Runner then finds the group running.
    - Without GPUs: torch's ``init_process_group`` with
      :func:`process_group_kwargs` (MMEngine's ``init_dist`` calls
      ``torch.cuda.set_device`` and fails there); ``--launcher pytorch``
      only.

    Raises:
        RuntimeError: ``--launcher slurm | mpi`` on a machine without GPUs.
        RankFailureError: another rank did not join within
            ``env_cfg.dist_cfg.timeout`` (:func:`explain_rank_failures`).
    """
    if dist.is_initialized():
        return
    dist_cfg = dict(cfg.env_cfg.dist_cfg)
    timeout = dist_cfg.get('timeout')
    if not torch.cuda.is_available() and launcher != 'pytorch':
        raise RuntimeError(
            f'--launcher {launcher} on a machine without GPUs is not '
            'supported; use --launcher pytorch (torchrun / '
            'tools/dist_train.sh)'
        )
    # a rank that never joins: the rendezvous fails after the timeout
    with explain_rank_failures(cfg):
        if torch.cuda.is_available():
            from mmengine.dist import init_dist
            from mmengine.utils.dl_utils import set_multi_processing

            set_multi_processing(
                **cfg.env_cfg.get('mp_cfg', {}), distributed=True
            )
            init_dist(launcher, **dist_cfg)
        else:
            dist.init_process_group(
                dist_cfg['backend'], **process_group_kwargs(dist_cfg)
            )
    print_log(
        f'initialised {dist.get_backend()} process group: rank '
        f'{dist.get_rank()} of {dist.get_world_size()} '
        f'(LOCAL_RANK={os.environ.get("LOCAL_RANK")}), collective timeout '
        + (
            f'{timeout:g} s (env_cfg.dist_cfg.timeout)'
            if timeout is not None
            else f"{_default_timeout():g} s (torch's default; "
            'env_cfg.dist_cfg.timeout unset)'
        ),
        'current',
    )


def is_cost_hook(hook) -> bool:
    """Whether a ``custom_hooks`` entry is ``mmst.STCostHook``."""
    kind = hook.get('type') if isinstance(hook, dict) else None
    return str(kind).split('.')[-1] == 'STCostHook'


def add_cost_hook(cfg: Config) -> None:
    """Append ``dict(type='mmst.STCostHook')`` to ``cfg.custom_hooks``
    unless a hook of that type is there."""
    hooks = list(cfg.get('custom_hooks') or [])
    if not any(is_cost_hook(h) for h in hooks):
        cfg.custom_hooks = hooks + [dict(type='mmst.STCostHook')]


def prepare_config(cfg: Config, launcher: str = 'none') -> Config:
    """Set up ``cfg`` for ``launcher`` before ``Runner.from_cfg``.

    - ``env_cfg.dist_cfg`` is checked (:func:`check_dist_cfg`), on every
      launcher;
    - ST models get :class:`mmst.engine.STCostHook` (what the run costs
      relative to CT) in ``custom_hooks`` unless it is there, and mmst's
      data-parallel wrapper when none is configured;
    - for a distributed launcher, the process group is started here with
      ``env_cfg.dist_cfg`` (backend, timeout, ...):
      :func:`init_process_group` (MMEngine's ``init_dist`` on GPUs; torch's
      gloo group on a machine without GPUs, where MMEngine's fails), so
      that what runs before the Runner (the work-dir lock) can talk to
      the other ranks;
    - without GPUs, torch DDP wrappers are built with ``device_ids=None``.

    Args:
        cfg (Config): The full config (modified in place).
        launcher (str): ``'none' | 'pytorch' | 'slurm' | 'mpi'``.

    Returns:
        Config: ``cfg``.

    Raises:
        ValueError: an unknown launcher, or a bad ``env_cfg.dist_cfg``
            (the key, the value and what is allowed).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(
            f'--launcher={launcher!r} is invalid; allowed: '
            + ' | '.join(LAUNCHERS)
        )
    check_dist_cfg(cfg, launcher)
    cfg.launcher = launcher
    register_scope_modules(cfg)
    model_type = cfg.model.get('type') if cfg.get('model') else None
    if model_type in ST_TYPES:
        add_cost_hook(cfg)
    if launcher == 'none':
        return cfg

    if cfg.get('model_wrapper_cfg') is None and model_type in ST_TYPES:
        cfg.model_wrapper_cfg = dict(type='mmst.STDistributedDataParallel')
    _backend(cfg)
    if not torch.cuda.is_available():
        wrapper = cfg.get('model_wrapper_cfg')
        if wrapper is None:
            cfg.model_wrapper_cfg = dict(
                type='MMDistributedDataParallel', device_ids=None
            )
        elif str(wrapper.get('type', '')).split('.')[-1] in TORCH_DDP_TYPES:
            wrapper['device_ids'] = None
    init_process_group(cfg, launcher)
    return cfg


class RankFailureError(RuntimeError):
    """A collective failed because another rank stopped answering (it is
    frozen, suspended or dead) within ``env_cfg.dist_cfg.timeout``, or
    closed its connection (it died). The message is one line naming the
    rank, the timeout and the cause; the collective's own error is the
    ``__cause__``."""


_DIED = (
    'connection reset by peer',
    'connection closed by peer',
    'broken pipe',
    'connection refused',
    'socket closed',
)
_TIMED_OUT = ('timed out', 'timeout')


def rank_failure(
    err: BaseException, timeout: Optional[float]
) -> Optional[str]:
    """The one-line explanation of ``err`` when it is a collective that
    failed because another rank stopped or died, else ``None``.

    Args:
        err: The exception a collective raised (gloo: ``RuntimeError``
            "Timed out waiting 5000ms for recv operation to complete" or
            "Read error ...: Connection reset by peer"; NCCL and the
            store: ``torch.distributed.DistError`` and subclasses).
        timeout: ``env_cfg.dist_cfg.timeout`` in seconds, or ``None`` when
            the config leaves torch's default.
    """
    if not isinstance(err, RuntimeError) or isinstance(err, RankFailureError):
        return None
    text = str(err)
    low = text.lower()
    if not (
        isinstance(err, dist.DistError)
        or any(s in low for s in ('gloo', 'c10d', 'nccl', 'processgroup'))
    ):
        return None  # e.g. a DataLoader's own timeout
    if dist.is_available() and dist.is_initialized():
        who = f'rank {dist.get_rank()} of {dist.get_world_size()}'
    elif 'RANK' in os.environ and 'WORLD_SIZE' in os.environ:  # starting
        who = f'rank {os.environ["RANK"]} of {os.environ["WORLD_SIZE"]}'
    else:
        who = 'this rank'
    if timeout is not None:
        setting = f'env_cfg.dist_cfg.timeout={timeout:g} s'
    else:
        setting = (
            "env_cfg.dist_cfg.timeout unset (torch's default: "
            f'{_default_timeout():g} s)'
        )
    first = text.strip().splitlines()[0][:300] if text.strip() else ''
    if any(s in low for s in _DIED):
        return (
            f'{who}: another rank died (it closed its connection during a '
            f"collective; {setting} was not reached): see the other ranks' "
            f'output for its error. torch.distributed said: {first}'
        )
    if any(s in low for s in _TIMED_OUT):
        return (
            f'{who}: no answer from another rank within {setting}: a rank '
            'stopped (frozen, suspended, deadlocked, or working alone longer '
            'than the timeout), died or never started; see the other '
            "ranks' output, and raise env_cfg.dist_cfg.timeout if a rank "
            'legitimately works alone that long. torch.distributed said: '
            f'{first}'
        )
    return None


def _default_timeout() -> float:
    """torch's default collective timeout (seconds) of the running group's
    backend (gloo's when none runs)."""
    from torch.distributed import constants

    default = constants.default_pg_timeout
    if dist.is_initialized() and 'nccl' in str(dist.get_backend()):
        default = constants.default_pg_nccl_timeout or default
    return default.total_seconds()


def dist_timeout(cfg: Config) -> Optional[float]:
    """``env_cfg.dist_cfg.timeout`` in seconds, ``None`` when unset."""
    return ((cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('timeout')


@contextmanager
def explain_rank_failures(cfg: Config) -> Iterator[None]:
    """Turn a collective's failure caused by another rank (stopped,
    frozen or dead: :func:`rank_failure`) into a :class:`RankFailureError`
    with one line naming this rank, ``env_cfg.dist_cfg.timeout`` and the
    cause, also logged (ERROR) to the run's log; other errors pass
    unchanged.

    Args:
        cfg (Config): The config (its ``env_cfg.dist_cfg.timeout``).

    Raises:
        RankFailureError: from the collective's error.
    """
    try:
        yield
    except RuntimeError as err:
        message = rank_failure(err, dist_timeout(cfg))
        if message is None:
            raise
        print_log(message, 'current', logging.ERROR)
        raise RankFailureError(message) from err


def maybe_destroy_process_group(launcher: Optional[str]) -> None:
    if launcher not in (None, 'none') and dist.is_initialized():
        dist.destroy_process_group()


def add_launch_args(parser) -> None:
    """Add the options ``tools/train.py`` and ``tools/test.py`` share to an
    argparse ``parser``: ``--cfg-options``, ``--launcher`` and
    ``--local_rank`` (``--local-rank``); parse with
    :func:`parse_launch_args`."""
    from mmengine.config import DictAction

    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value (lists: key="[a,b]")',
    )
    parser.add_argument(
        '--launcher', choices=LAUNCHERS, default='none', help='job launcher'
    )
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_launch_args(parser, argv=None):
    """``parser.parse_args(argv)``, and ``LOCAL_RANK`` set from
    ``--local_rank`` unless the launcher set it (as MMEngine expects)."""
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def set_work_dir(cfg: Config, work_dir: Optional[str], config: str) -> None:
    """``cfg.work_dir``: ``work_dir`` (``--work-dir``) if given, else the
    config's, else ``./work_dirs/<config name>`` (as MMEngine's tools)."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = os.path.join(
            './work_dirs', os.path.splitext(os.path.basename(config))[0]
        )
