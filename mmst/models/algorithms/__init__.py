from .stimulative import (
    StimulativeTraining,
    freeze_bn_running_stats,
    unwrap_st,
)
from .tasks import TaskAdapter, infer_task

__all__ = [
    'StimulativeTraining',
    'freeze_bn_running_stats',
    'unwrap_st',
    'TaskAdapter',
    'infer_task',
]
