"""Let ``torch.load(weights_only=True)`` read MMEngine's own checkpoints.

torch >= 2.6 loads checkpoints with ``weights_only=True`` by default, and
MMEngine 0.10.x calls ``torch.load(filename, map_location=...)`` without
``weights_only`` when it resumes or loads a checkpoint. Besides tensors, a
checkpoint written by MMEngine's ``Runner`` holds:

* the message hub's ``HistoryBuffer`` objects (numpy arrays of logged
  scalars) and its runtime info (numpy scalars such as a best score);
* ``meta['dataset_meta']``, the training dataset's metainfo, which for
  mmpose holds numpy arrays (``uint8`` colours, ``float32`` sigmas, ...);
* ``collections.OrderedDict`` / ``collections.Counter`` and
  ``builtins.getattr`` (how pickle rebuilds some of these objects).

Unpickling numpy arrays and scalars goes through ``_reconstruct`` /
``scalar`` and a ``BUILD`` step on the array's dtype instance, so the dtype
classes that occur must be allow-listed as well.

:func:`allow_mmengine_checkpoint_globals` allow-lists exactly these globals
with ``torch.serialization.add_safe_globals`` instead of disabling weights-only
loading (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``), which would allow arbitrary
code execution from a checkpoint file.
"""

import builtins
import collections
from typing import Any, List

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar

__all__ = ['allow_mmengine_checkpoint_globals']

# dtypes of the numpy arrays / scalars found in MMEngine checkpoints:
# float64 (HistoryBuffer logs, metrics), float32 (metrics, mmpose sigmas),
# int64 / int32 (counters, indices), bool, uint8 (mmpose colour tables).
_NUMPY_DTYPES = (
    np.float64,
    np.float32,
    np.int64,
    np.int32,
    np.bool_,
    np.uint8,
)

# A checkpoint records the module path the function had when it was saved:
# ``numpy.core.multiarray`` under numpy 1 and ``numpy._core.multiarray``
# under numpy 2. Register both names so either kind of checkpoint loads.
_NUMPY_MULTIARRAY_MODULES = ('numpy.core.multiarray', 'numpy._core.multiarray')

_ALLOWED: List[Any] = []


def _mmengine_checkpoint_globals() -> List[Any]:
    """Return the globals MMEngine checkpoints need, in the form accepted by
    ``torch.serialization.add_safe_globals``.

    Returns:
        list: Classes and functions, and ``(function, 'module.name')`` pairs
        for the numpy functions saved under another numpy major version's
        module path.
    """
    safe: List[Any] = [
        HistoryBuffer,
        np.ndarray,
        np.dtype,
        _reconstruct,
        scalar,
        builtins.getattr,
        collections.OrderedDict,
        collections.Counter,
    ]
    safe += [type(np.dtype(t)) for t in _NUMPY_DTYPES]
    for func in (_reconstruct, scalar):
        for module in _NUMPY_MULTIARRAY_MODULES:
            if module != func.__module__:
                safe.append((func, f'{module}.{func.__name__}'))
    return safe


def allow_mmengine_checkpoint_globals() -> List[Any]:
    """Allow-list the globals of MMEngine checkpoints for weights-only loads.

    Idempotent: a second call adds nothing. Does nothing on torch versions
    without ``torch.serialization.add_safe_globals`` (< 2.4), which load with
    ``weights_only=False`` by default anyway.

    Returns:
        list: The globals that were allow-listed (empty on old torch).
    """
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return []
    if not _ALLOWED:
        _ALLOWED.extend(_mmengine_checkpoint_globals())
    # add_safe_globals unions into a set, so re-adding is harmless and keeps
    # the list in place even after torch.serialization.clear_safe_globals().
    torch.serialization.add_safe_globals(list(_ALLOWED))
    return list(_ALLOWED)
