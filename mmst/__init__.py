"""mmst: Stimulative Training (ST / ST++) for OpenMMLab.

Importing mmst registers all of its components (scope ``mmst``). Parts that
need a task library (mmdet, mmseg, mmpose, mmpretrain) register only when
that library is installed.
"""

from . import datasets, engine, models  # noqa: F401  (registration)
from .version import __version__

__all__ = ['__version__']
