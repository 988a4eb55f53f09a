from .stimulative import (
    StimulativeTraining,
    elastic_of,
    freeze_bn_running_stats,
    one_iteration,
    subnet_weight,
    unwrap_st,
)

__all__ = [
    'elastic_of',
    'StimulativeTraining',
    'freeze_bn_running_stats',
    'one_iteration',
    'subnet_weight',
    'unwrap_st',
]
