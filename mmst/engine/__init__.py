from .bn_recal import (
    DEFAULT_RECAL_SEED,
    RecalLoader,
    build_recal_loader,
    preserved_bn_stats,
    recalibrate_bn,
    seeded_rng,
)
from .checkpoint import AtomicLocalBackend, find_resume_checkpoint
from .checkpoint_hook import SafeCheckpointHook
from .safe_globals import allow_mmengine_checkpoint_globals
from .subnet_eval import (
    SharedBNRecalHook,
    SubnetValLoop,
    elastic_of,
    evaluate_subnet,
    resolve_subnets,
)
from .work_dir_lock import WorkDirLock, WorkDirLockedError

# Resuming MMEngine checkpoints under torch>=2.6 (weights_only=True loads).
allow_mmengine_checkpoint_globals()

__all__ = [
    'DEFAULT_RECAL_SEED',
    'RecalLoader',
    'build_recal_loader',
    'preserved_bn_stats',
    'recalibrate_bn',
    'seeded_rng',
    'AtomicLocalBackend',
    'find_resume_checkpoint',
    'SafeCheckpointHook',
    'SharedBNRecalHook',
    'SubnetValLoop',
    'evaluate_subnet',
    'elastic_of',
    'resolve_subnets',
    'allow_mmengine_checkpoint_globals',
    'WorkDirLock',
    'WorkDirLockedError',
]
