"""Moved: the tasks live in :mod:`mmst.models.tasks`. This name is kept
for ``tools/analysis_tools/logit_magnitude.py``, which imports
``infer_task`` from here."""

from ..tasks.base import infer_task

__all__ = ['infer_task']
