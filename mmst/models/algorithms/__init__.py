from .stimulative import (
    StimulativeTraining,
    freeze_bn_running_stats,
    one_iteration,
    unwrap_st,
)

__all__ = [
    'StimulativeTraining',
    'freeze_bn_running_stats',
    'one_iteration',
    'unwrap_st',
]
