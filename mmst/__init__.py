"""mmst: Stimulative Training (ST / ST++) for OpenMMLab.

Importing mmst is light (torch and MMEngine's registry, no task library):
it creates mmst's registries (scope ``mmst``, :mod:`mmst.registry`), adds
the ``mmst::`` config scope, registers the atomic checkpoint backend and
allow-lists MMEngine's checkpoint globals (:mod:`mmst.engine`). The
components register when first looked up: a registry imports the modules
its ``locations`` name on its first ``get`` / ``build``
(``type='mmst.StimulativeTraining'``, or any type under
``default_scope='mmst'``), and ``from mmst.models import ...`` imports
them as usual. Parts that need a task library (mmdet, mmseg, mmpose,
mmpretrain) register only when that library is installed.
"""

import importlib

from mmengine.config.utils import MODULE2PACKAGE

from . import engine, registry  # noqa: F401  (backend, checkpoint globals)
from .version import __version__

# ``_base_ = ['mmst::mmpretrain/...']`` and ``mim train mmst``: MMEngine
# resolves ``PKG::`` only for packages in this table (docs/mim.md).
MODULE2PACKAGE.setdefault('mmst', 'mmst')

# Subpackages imported on first attribute access (``mmst.models.X`` after
# ``import mmst``), as they were when ``import mmst`` imported them all.
_SUBMODULES = (
    'analysis',
    'apis',
    'converters',
    'datasets',
    'models',
    'settings',
    'stack',
    'subnet',
    'testing',
    'utils',
)

__all__ = ['__version__']


def __getattr__(name: str):
    """``mmst.NAME`` for a subpackage not imported yet: imports it."""
    if name in _SUBMODULES:
        return importlib.import_module(f'.{name}', __name__)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
