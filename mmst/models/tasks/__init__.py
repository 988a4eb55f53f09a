"""One registered task per kind of upstream model (see
:class:`~mmst.models.tasks.base.BaseTask` and ``docs/tasks.md``). The task
libraries are imported inside the functions only, so this package imports
with any subset of mmpretrain / mmdet / mmseg / mmpose installed."""

from .base import BaseTask, build_task, get_rescaler, infer_task, task_class
from .classification import ClassificationTask
from .dense import DenseTask
from .detection import DetectionTask
from .pose import PoseTask
from .segmentation import SegmentationTask

__all__ = [
    'BaseTask',
    'build_task',
    'get_rescaler',
    'infer_task',
    'task_class',
    'ClassificationTask',
    'DenseTask',
    'DetectionTask',
    'SegmentationTask',
    'PoseTask',
]
