"""mmst's engine parts: checkpoint safety, BN recalibration, sub-network
evaluation.

Importing this package (``import mmst`` does) registers the atomic file
backend (``backend_args=dict(backend='mmst_atomic_local')``) and
allow-lists MMEngine's checkpoint globals for torch's weights-only loading;
both need only torch and ``mmengine.fileio``. The hook, the loop and the
BN recalibration import MMEngine's runner (seconds): their modules are
imported on first use, by a registry lookup (``type='mmst.SubnetValLoop'``,
:mod:`mmst.registry`'s ``locations``) or by name
(``from mmst.engine import SubnetValLoop``).
"""

from ..utils import lazy_getattr
from .checkpoint import AtomicLocalBackend, find_resume_checkpoint
from .safe_globals import allow_mmengine_checkpoint_globals
from .work_dir_lock import WorkDirLock, WorkDirLockedError

# Resuming MMEngine checkpoints under torch>=2.6 (weights_only=True loads).
allow_mmengine_checkpoint_globals()

# name -> submodule, imported on first access (PEP 562).
_LAZY = {
    'DEFAULT_RECAL_SEED': 'bn_recal',
    'RecalLoader': 'bn_recal',
    'build_recal_loader': 'bn_recal',
    'member_bn_stats': 'bn_recal',
    'preserved_bn_stats': 'bn_recal',
    'recalibrate_bn': 'bn_recal',
    'seeded_rng': 'bn_recal',
    'SafeCheckpointHook': 'checkpoint_hook',
    'FlopMeter': 'cost',
    'STCostHook': 'cost',
    'SharedBNRecalHook': 'subnet_eval',
    'SubnetMetricsHook': 'subnet_eval',
    'SubnetValLoop': 'subnet_eval',
    'elastic_of': 'subnet_eval',
    'evaluate_members': 'subnet_eval',
    'evaluate_subnet': 'subnet_eval',
    'resolve_subnets': 'subnet_eval',
    'run_members': 'subnet_eval',
}

__all__ = [
    'DEFAULT_RECAL_SEED',
    'RecalLoader',
    'build_recal_loader',
    'member_bn_stats',
    'preserved_bn_stats',
    'recalibrate_bn',
    'seeded_rng',
    'AtomicLocalBackend',
    'find_resume_checkpoint',
    'SafeCheckpointHook',
    'FlopMeter',
    'STCostHook',
    'SharedBNRecalHook',
    'SubnetMetricsHook',
    'SubnetValLoop',
    'evaluate_members',
    'evaluate_subnet',
    'run_members',
    'elastic_of',
    'resolve_subnets',
    'allow_mmengine_checkpoint_globals',
    'WorkDirLock',
    'WorkDirLockedError',
]


__getattr__ = lazy_getattr(__name__, _LAZY)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
