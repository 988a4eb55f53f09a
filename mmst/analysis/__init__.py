"""Analysis of trained elastic networks as a library: the loafing table,
logit magnitudes, sub-network cost and export (``docs/analysis.md``); the
command-line tools under ``tools/`` are thin wrappers around it."""

from .cost import FLOPS_CONVENTION, count_flops, count_params, skipped_blocks
from .runner import (
    SPLITS,
    build_evaluation,
    build_recal_loader,
    build_runner,
    input_shape_of,
    load_config,
    load_weights,
    model_space,
    progress,
    quiet_logs,
)

__all__ = [
    'FLOPS_CONVENTION',
    'count_flops',
    'count_params',
    'skipped_blocks',
    'SPLITS',
    'build_evaluation',
    'build_recal_loader',
    'build_runner',
    'input_shape_of',
    'load_config',
    'load_weights',
    'model_space',
    'progress',
    'quiet_logs',
]
