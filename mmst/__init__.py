"""mmst: Stimulative Training (ST / ST++) for OpenMMLab.

Importing mmst registers all of its components (scope ``mmst``). Parts that
need a task library (mmdet, mmseg, mmpose, mmpretrain) register only when
that library is installed.
"""

from mmengine.config.utils import MODULE2PACKAGE

from . import datasets, engine, models  # noqa: F401  (registration)
from .version import __version__

# ``_base_ = ['mmst::mmpretrain/...']`` and ``mim train mmst``: MMEngine
# resolves ``PKG::`` only for packages in this table (docs/mim.md).
MODULE2PACKAGE.setdefault('mmst', 'mmst')

__all__ = ['__version__']
