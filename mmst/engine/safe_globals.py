"""Let ``torch.load(weights_only=True)`` read MMEngine's own checkpoints,
and nothing a crafted file could do beyond that.

torch >= 2.6 loads checkpoints with ``weights_only=True`` by default, and
MMEngine 0.10.x calls ``torch.load(filename, map_location=...)`` without
``weights_only`` when it resumes or loads a checkpoint. Besides tensors, a
checkpoint written by MMEngine's ``Runner`` holds:

* the message hub's ``HistoryBuffer`` objects (numpy arrays of logged
  scalars) and its runtime info (numpy scalars such as a best score);
* ``meta['dataset_meta']``, the training dataset's metainfo, which for
  mmpose holds numpy arrays (``uint8`` colours, ``float32`` sigmas, ...);
* ``collections.OrderedDict`` / ``collections.Counter``.

What the pickle of such a checkpoint calls (read with ``pickletools``):

* ``numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b')`` and a
  ``BUILD`` with the array's state, for every numpy array; the state holds
  ``numpy.dtype(...)``, rebuilt by a ``BUILD`` on the dtype instance (so
  the classes of the dtypes that occur are needed too);
* ``numpy.core.multiarray.scalar(dtype, bytes)`` for numpy scalars;
* ``HistoryBuffer`` (``NEWOBJ`` + ``BUILD``); its state holds
  ``statistics_methods``, the functions ``HistoryBuffer.current``, ``max``,
  ``mean`` and ``min``, which pickle stores as
  ``builtins.getattr(HistoryBuffer, 'min')`` and so on (a function is
  pickled by its qualified name, here an attribute of a class). This is the
  only use of ``getattr`` in MMEngine checkpoints.

The real ``builtins.getattr`` and ``numpy.ndarray`` must not be on torch's
allow-list: it applies to every weights-only load of the process. With
``getattr`` a file walks from any allow-listed object to anything
(``getattr(getattr, '__self__')`` is the ``builtins`` module, a function's
``__globals__`` a module's namespace that ``SETITEMS`` writes into, ...),
and torch's own allow-listed ``torch._tensor._rebuild_from_type_v2(func,
new_type, args, state)`` calls ``func(*args)`` on whatever it reached
(``eval``, ``os.system``). With ``numpy.ndarray`` callable (``REDUCE`` /
``NEWOBJ``), ``numpy.ndarray(shape, numpy.dtype('O'), raw_bytes)`` makes an
object array whose object pointers are the file's bytes.

So :func:`allow_mmengine_checkpoint_globals` registers, under the names the
pickle uses:

* ``builtins.getattr`` -> :func:`checkpoint_getattr`, which returns
  ``getattr(HistoryBuffer, name)`` for the four names above and raises
  ``pickle.UnpicklingError`` naming the object and the attribute otherwise;
* ``numpy.ndarray`` -> :class:`NDArrayArgument`, a stand-in that numpy's
  ``_reconstruct`` (:func:`checkpoint_reconstruct`, under both numpy
  module paths) maps to ``numpy.ndarray``, and that refuses to be called or
  instantiated;
* ``numpy.ndarray`` itself under a key without a dot, which no ``GLOBAL``
  (``module.name``) can spell: torch's ``BUILD`` needs the class of a
  rebuilt array on the list, but the file cannot name it;
* ``numpy.core.multiarray.scalar`` (and its numpy 2 path), ``numpy.dtype``,
  the classes of the dtypes above, ``HistoryBuffer``, ``OrderedDict`` and
  ``Counter``, unchanged.

It does so process-wide rather than around each load: MMEngine's Runner
calls ``torch.load`` inside ``Runner.resume`` / ``load_checkpoint``, which
mmst's tools and APIs reach without a place to wrap them short of patching
MMEngine. What a stranger's checkpoint can and cannot do is summed up in
docs/troubleshooting.md ("Loading a checkpoint you did not make").
"""

import builtins
import collections
import pickle
import types
import warnings
from typing import Any, Dict, List

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar

__all__ = [
    'allow_mmengine_checkpoint_globals',
    'checkpoint_getattr',
    'checkpoint_reconstruct',
    'NDArrayArgument',
]

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

# The attributes a checkpoint may get: MMEngine's message hub pickles the
# HistoryBuffer statistics methods it registers by default.
HISTORY_BUFFER_STATISTICS = ('current', 'max', 'mean', 'min')

# torch's GLOBAL opcode looks names up as ``f'{module}.{name}'``; a key
# without a dot is never looked up. Under it, numpy.ndarray is on the list
# so that torch's BUILD fills in the arrays checkpoint_reconstruct returns,
# but no file can push the class itself onto the stack (to call it).
_NDARRAY_BUILD_ONLY_KEY = (
    'numpy ndarray (mmst: BUILD of arrays rebuilt by _reconstruct only)'
)

_DOCS = (
    'see "Loading a checkpoint you did not make" in docs/troubleshooting.md'
)

_ALLOWED: List[Any] = []


def _describe(obj: Any) -> str:
    """Name ``obj`` for an error message without calling its ``__repr__``
    (an object from the file)."""
    for stand_in, name in _STAND_INS.items():
        if obj is stand_in:
            return name
    kind = type(obj)
    try:
        if issubclass(kind, type):
            return f'class {obj.__module__}.{obj.__qualname__}'
        if kind is types.ModuleType:
            return f'module {obj.__name__}'
        kinds = {
            types.FunctionType: 'function',
            types.BuiltinFunctionType: 'builtin function',
            types.MethodType: 'method',
        }
        if kind in kinds:
            return f'{kinds[kind]} {obj.__module__}.{obj.__qualname__}'
    except Exception:  # noqa: BLE001 - a name is only for the message
        pass
    return f'a {kind.__module__}.{kind.__qualname__} object'


def _describe_name(name: Any) -> str:
    if type(name) is not str:
        return _describe(name)
    return repr(name) if len(name) <= 80 else f'{name[:80]!r}...'


def checkpoint_getattr(obj: Any, name: Any, *default: Any) -> Any:
    """``builtins.getattr`` as a weights-only ``torch.load`` sees it after
    ``import mmst``: only what MMEngine checkpoints ask for.

    Args:
        obj: The object, from the file.
        name: The attribute name, from the file.
        *default: A default value (never used by MMEngine: refused).

    Returns:
        The function ``getattr(HistoryBuffer, name)``, for ``obj`` the class
        ``mmengine.logging.history_buffer.HistoryBuffer`` itself and ``name``
        one of ``'current'``, ``'max'``, ``'mean'``, ``'min'``.

    Raises:
        pickle.UnpicklingError: For anything else, naming the object and the
            attribute asked for and what is allowed.
    """
    if (
        not default
        and obj is HistoryBuffer
        and type(name) is str
        and name in HISTORY_BUFFER_STATISTICS
    ):
        return getattr(HistoryBuffer, name)
    allowed = ', '.join(map(repr, HISTORY_BUFFER_STATISTICS))
    if default:
        call = f'getattr({_describe(obj)}, {_describe_name(name)}, default)'
    else:
        call = f'getattr({_describe(obj)}, {_describe_name(name)})'
    raise pickle.UnpicklingError(
        f'mmst refused {call} while loading a checkpoint with '
        'torch.load(weights_only=True): a checkpoint may only get '
        'getattr(mmengine.logging.history_buffer.HistoryBuffer, NAME) for '
        f'NAME in {allowed}, without a default (how MMEngine pickles its '
        'message hub); this file asks for something else, so MMEngine did '
        'not write it as it is, and attribute walks like this one are how '
        f'crafted checkpoints reach code ({_DOCS})'
    )


class NDArrayArgument:
    """What the name ``numpy.ndarray`` gives a weights-only ``torch.load``
    after ``import mmst``: a stand-in that only
    :func:`checkpoint_reconstruct` accepts (as ``numpy.ndarray``).

    Raises:
        pickle.UnpicklingError: When a file calls or instantiates it
            (``numpy.ndarray(shape, dtype, buffer)`` from the file's bytes).
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> 'NDArrayArgument':
        raise pickle.UnpicklingError(
            'mmst refused numpy.ndarray(...) (a call or NEWOBJ) while '
            'loading a checkpoint with torch.load(weights_only=True): a '
            "checkpoint may only pass numpy.ndarray to numpy's "
            '_reconstruct, which is how numpy pickles an array; '
            'numpy.ndarray(shape, dtype, buffer) would build an array on '
            'bytes from the file (with an object dtype: object pointers '
            f'from the file) ({_DOCS})'
        )


def checkpoint_reconstruct(subtype: Any, shape: Any, dtype: Any) -> Any:
    """numpy's ``_reconstruct`` as a weights-only ``torch.load`` sees it
    after ``import mmst``.

    Args:
        subtype: :class:`NDArrayArgument` (what the name ``numpy.ndarray``
            resolves to); the real ``numpy.ndarray`` is accepted too, in
            case other code allow-listed it under its name.
        shape: The shape numpy pickles (``(0,)``).
        dtype: The dtype code numpy pickles (``b'b'``).

    Returns:
        numpy.ndarray: An empty array, filled in by the ``BUILD`` opcode
        that follows (``ndarray.__setstate__``).

    Raises:
        pickle.UnpicklingError: ``subtype`` is anything else (numpy pickles
            an ``ndarray`` subclass under the subclass's own name, which is
            not allow-listed).
    """
    if subtype is NDArrayArgument or subtype is np.ndarray:
        return _reconstruct(np.ndarray, shape, dtype)
    raise pickle.UnpicklingError(
        f'mmst refused numpy _reconstruct({_describe(subtype)}, ...) while '
        'loading a checkpoint with torch.load(weights_only=True): only '
        f'numpy.ndarray is allowed as its first argument ({_DOCS})'
    )


# How the stand-ins are named in messages: as the file names them.
_STAND_INS = {
    checkpoint_getattr: 'builtins.getattr',
    NDArrayArgument: 'numpy.ndarray',
    checkpoint_reconstruct: 'numpy _reconstruct',
}


def _mmengine_checkpoint_globals() -> List[Any]:
    """Return the globals MMEngine checkpoints need, in the form accepted by
    ``torch.serialization.add_safe_globals``.

    Returns:
        list: Classes and functions, and ``(object, 'module.name')`` pairs
        for the restricted stand-ins and for the numpy functions under both
        numpy major versions' module paths.
    """
    safe: List[Any] = [
        HistoryBuffer,
        np.dtype,
        collections.OrderedDict,
        collections.Counter,
        (checkpoint_getattr, 'builtins.getattr'),
        (NDArrayArgument, 'numpy.ndarray'),
        (np.ndarray, _NDARRAY_BUILD_ONLY_KEY),
    ]
    safe += [type(np.dtype(t)) for t in _NUMPY_DTYPES]
    for module in _NUMPY_MULTIARRAY_MODULES:
        safe.append((checkpoint_reconstruct, f'{module}._reconstruct'))
        safe.append((scalar, f'{module}.scalar'))
    return safe


def _entry_name(entry: Any) -> str:
    """The name torch looks an allow-list entry up by."""
    if isinstance(entry, tuple):
        return entry[1]
    return f'{entry.__module__}.{entry.__qualname__}'


def _entry_object(entry: Any) -> Any:
    return entry[0] if isinstance(entry, tuple) else entry


def _drop_shadowing_entries(ours: List[Any]) -> List[Any]:
    """Take off torch's allow-list what other code put there that would
    undo the restrictions: the real ``builtins.getattr`` under any name, and
    any other object under a name mmst registers (torch resolves a name
    shared by two entries to either of them).

    Returns:
        list: The entries taken off (a warning names them).
    """
    our_names: Dict[str, Any] = {
        _entry_name(e): _entry_object(e) for e in ours
    }
    listed = torch.serialization.get_safe_globals()
    dropped: List[Any] = []
    kept: List[Any] = []
    for entry in listed:
        obj, name = _entry_object(entry), _entry_name(entry)
        if obj is builtins.getattr or (
            name in our_names and obj is not our_names[name]
        ):
            dropped.append(entry)
        else:
            kept.append(entry)
    if dropped:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(kept)
        described: List[str] = []
        for entry in dropped:
            described.append(
                f'{_describe(_entry_object(entry))} as {_entry_name(entry)!r}'
            )
        warnings.warn(
            "mmst took off torch's weights-only allow-list what other code "
            f'had put there: {"; ".join(described)}. The real '
            'builtins.getattr, or another object under a name mmst '
            'registers (torch resolves a name listed twice to either '
            'entry), would let any weights-only torch.load in this process '
            f'run code from the file ({_DOCS})',
            stacklevel=3,
        )
    return dropped


def allow_mmengine_checkpoint_globals() -> List[Any]:
    """Allow-list the globals of MMEngine checkpoints for weights-only loads,
    with ``builtins.getattr``, ``numpy.ndarray`` and numpy's
    ``_reconstruct`` replaced by restricted stand-ins (module docstring).

    Idempotent: a second call adds nothing. Takes the real
    ``builtins.getattr`` (under any name) and other objects registered under
    the names above off the list, with a ``UserWarning`` naming them. Does
    nothing on torch versions without ``torch.serialization.add_safe_globals``
    (< 2.4), which load with ``weights_only=False`` by default anyway.

    Returns:
        list: The globals that were allow-listed (empty on old torch):
        classes and functions, and ``(object, name)`` pairs.
    """
    if not hasattr(torch.serialization, 'add_safe_globals'):
        return []
    if not _ALLOWED:
        _ALLOWED.extend(_mmengine_checkpoint_globals())
    _drop_shadowing_entries(_ALLOWED)
    # add_safe_globals unions into a set, so re-adding is harmless and keeps
    # the list in place even after torch.serialization.clear_safe_globals().
    torch.serialization.add_safe_globals(list(_ALLOWED))
    return list(_ALLOWED)
