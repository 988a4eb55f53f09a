from .bn_recal import (
    DEFAULT_RECAL_SEED,
    RecalLoader,
    build_recal_loader,
    member_bn_stats,
    preserved_bn_stats,
    recalibrate_bn,
    seeded_rng,
)
from .checkpoint import AtomicLocalBackend, find_resume_checkpoint
from .checkpoint_hook import SafeCheckpointHook
from .safe_globals import allow_mmengine_checkpoint_globals
from .subnet_eval import (
    SharedBNRecalHook,
    SubnetMetricsHook,
    SubnetValLoop,
    elastic_of,
    evaluate_members,
    evaluate_subnet,
    resolve_subnets,
    run_members,
)
from .work_dir_lock import WorkDirLock, WorkDirLockedError

# Resuming MMEngine checkpoints under torch>=2.6 (weights_only=True loads).
allow_mmengine_checkpoint_globals()

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
