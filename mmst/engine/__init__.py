from .bn_recal import preserved_bn_stats, recalibrate_bn
from .safe_globals import allow_mmengine_checkpoint_globals
from .subnet_eval import (
    SubnetValLoop,
    elastic_of,
    evaluate_subnet,
    resolve_subnets,
)

# Resuming MMEngine checkpoints under torch>=2.6 (weights_only=True loads).
allow_mmengine_checkpoint_globals()

__all__ = [
    'preserved_bn_stats',
    'recalibrate_bn',
    'SubnetValLoop',
    'evaluate_subnet',
    'elastic_of',
    'resolve_subnets',
    'allow_mmengine_checkpoint_globals',
]
