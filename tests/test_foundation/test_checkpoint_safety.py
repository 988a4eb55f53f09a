"""Crafted checkpoints cannot reach code or data through mmst's allow-list.

``import mmst`` extends torch's weights-only allow-list process-wide with
the globals MMEngine checkpoints hold (:mod:`mmst.engine.safe_globals`).
Before issue #24 that list held the real ``builtins.getattr`` and
``numpy.ndarray``. Every weights-only loader of the process then accepted:

* attribute walks: ``getattr(getattr, '__self__')`` is the ``builtins``
  module, ``getattr(f, '__globals__')`` / ``'__builtins__'`` a module's
  namespace (which ``SETITEMS`` then writes to), ``().__class__.__base__``
  is ``object`` ...;
* a call of anything such a walk reaches: torch's allow-listed
  ``torch._tensor._rebuild_from_type_v2(func, new_type, args, state)``
  runs ``func(*args)``, so ``eval``, ``__import__('os').system`` and
  ``object.__subclasses__`` ran from the file;
* ``numpy.ndarray(shape, object_dtype, raw_bytes)``: an object array whose
  object pointers are the file's bytes (a crash, or worse, on first use).

Each payload below is written with ``torch.save`` (zip format, and the
legacy format once) and must be refused with ``pickle.UnpicklingError``
naming what was refused, and leave no trace, through every loader mmst
uses: ``torch.load`` with ``weights_only=True`` and with torch's default
(what MMEngine 0.10.7 calls), MMEngine's ``_load_checkpoint`` (Runner
resume / ``load_from``, ``mmst.analysis.sweep``) and ``load_checkpoint``
(``mmst.deploy.export``), and the converter's ``read_checkpoint``
(``tools/model_converters/st_to_mmpretrain.py``).
"""

import builtins
import copyreg
import os
import pickle
import shlex
from typing import Any, Callable, Dict, Optional

import mmengine.logging.history_buffer as history_buffer_module
import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner import load_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint
from torch import nn

import mmst  # noqa: F401  (allow-lists the checkpoint globals)
from mmst.converters import ConversionError, load_authors_checkpoint
from mmst.converters.st_weights import read_checkpoint
from mmst.engine import allow_mmengine_checkpoint_globals
from mmst.engine.safe_globals import NDArrayArgument, checkpoint_getattr

# a name no module defines: what the namespace-writing payloads add
PLANTED = 'mmst_crafted_checkpoint_was_here'


class Reduce:
    """Pickles as ``func(*args)`` (``GLOBAL func``, the arguments, ``REDUCE``),
    then ``SETITEMS`` of ``items`` into the result when given."""

    def __init__(
        self, func: Callable, *args: Any, items: Optional[dict] = None
    ):
        self.func, self.args, self.items = func, args, items

    def __reduce__(self):
        if self.items is None:
            return self.func, self.args
        return self.func, self.args, None, None, iter(self.items.items())


class NewObj:
    """Pickles as ``cls.__new__(cls, *args)`` (the ``NEWOBJ`` opcode)."""

    def __init__(self, cls: type, *args: Any):
        self.cls, self.args = cls, args

    @property
    def __class__(self):  # pickle checks that ``cls`` is the object's class
        return self.cls

    def __reduce__(self):
        return copyreg.__newobj__, (self.cls, *self.args)


def attr(obj: Any, *names: str, items: Optional[dict] = None) -> Reduce:
    """``getattr(getattr(obj, names[0]), names[1]) ...``."""
    for i, name in enumerate(names):
        last = i == len(names) - 1
        obj = Reduce(getattr, obj, name, items=items if last else None)
    return obj


def call(func: Any, result_type: Any, *args: Any) -> Reduce:
    """``func(*args)`` for any object ``func`` the pickle can reach: torch's
    allow-listed ``_rebuild_from_type_v2`` calls its first argument, and
    returns the result as is when its type is ``result_type``."""
    return Reduce(
        torch._tensor._rebuild_from_type_v2, func, result_type, args, {}
    )


BUILTINS_MODULE = attr(getattr, '__self__')  # getattr.__self__ is builtins


def _payloads(marker: str) -> Dict[str, Any]:
    os_module = call(
        attr(BUILTINS_MODULE, '__import__'),
        attr(BUILTINS_MODULE, '__class__'),  # types.ModuleType
        'os',
    )
    return {
        'os.system': call(
            attr(os_module, 'system'),
            attr(0, '__class__'),
            f'touch {shlex.quote(marker)}',
        ),
        'eval': call(
            attr(BUILTINS_MODULE, 'eval'),
            attr(None, '__class__'),
            f'open({marker!r}, "w").close()',
        ),
        '__globals__': attr(
            HistoryBuffer, '__init__', '__globals__', items={PLANTED: marker}
        ),
        '__builtins__': attr(
            HistoryBuffer, '__init__', '__builtins__', items={PLANTED: marker}
        ),
        '__subclasses__': call(
            attr((), '__class__', '__base__', '__subclasses__'),
            attr([], '__class__'),
        ),
        # all zero bytes: NULL object pointers, which numpy tolerates; any
        # other bytes are pointers that crash the process when used
        'ndarray(object dtype, bytes)': Reduce(
            np.ndarray, (2,), Reduce(np.dtype, 'O'), bytes(16)
        ),
        'NEWOBJ ndarray(object dtype, bytes)': NewObj(
            np.ndarray, (2,), Reduce(np.dtype, 'O'), bytes(16)
        ),
    }


# what each payload's first refused step names
REFUSED = {
    'os.system': "'__self__'",
    'eval': "'__self__'",
    '__globals__': "'__init__'",
    '__builtins__': "'__init__'",
    '__subclasses__': "'__class__'",
    'ndarray(object dtype, bytes)': 'numpy.ndarray',
    'NEWOBJ ndarray(object dtype, bytes)': 'numpy.ndarray',
}


def _traces(marker: str) -> Dict[str, bool]:
    """What a payload that ran would have left behind."""
    return {
        'marker file': os.path.exists(marker),
        'name planted in builtins': hasattr(builtins, PLANTED),
        'name planted in mmengine.logging.history_buffer': hasattr(
            history_buffer_module, PLANTED
        ),
    }


@pytest.fixture
def clean_namespaces():
    """Undo what a payload planted (so one failure does not spread)."""
    yield
    for namespace in (builtins, history_buffer_module):
        if hasattr(namespace, PLANTED):
            delattr(namespace, PLANTED)


@pytest.fixture
def weights_only_default(monkeypatch):
    """torch's own default (weights_only=True), as MMEngine relies on."""
    monkeypatch.delenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', raising=False)
    monkeypatch.delenv('TORCH_FORCE_WEIGHTS_ONLY_LOAD', raising=False)
    allow_mmengine_checkpoint_globals()


def _torch_load(path: str) -> Any:
    return torch.load(path, map_location='cpu', weights_only=True)


def _torch_load_default(path: str) -> Any:
    return torch.load(path, map_location='cpu')


def _mmengine_load_checkpoint(path: str) -> Any:
    return load_checkpoint(nn.Linear(1, 1), path, map_location='cpu')


def _mmengine_internal_load(path: str) -> Any:
    return _load_checkpoint(path, map_location='cpu')


LOADERS = {
    'torch.load(weights_only=True)': _torch_load,
    'torch.load()': _torch_load_default,
    'mmengine _load_checkpoint': _mmengine_internal_load,
    'mmengine load_checkpoint': _mmengine_load_checkpoint,
}


def _write(tmp_path, case: str, legacy: bool = False) -> str:
    marker = str(tmp_path / 'marker')
    path = str(tmp_path / 'crafted.pth')
    torch.save(
        {'state_dict': {}, 'payload': _payloads(marker)[case]},
        path,
        _use_new_zipfile_serialization=not legacy,
    )
    return path


@pytest.mark.parametrize('loader', list(LOADERS))
@pytest.mark.parametrize('case', list(REFUSED))
def test_crafted_checkpoint_is_refused(
    tmp_path, case, loader, weights_only_default, clean_namespaces
):
    path = _write(tmp_path, case)
    marker = str(tmp_path / 'marker')
    assert not any(_traces(marker).values())

    with pytest.raises(pickle.UnpicklingError) as info:
        LOADERS[loader](path)

    assert REFUSED[case] in str(info.value), str(info.value)
    assert 'mmst' in str(info.value)
    assert _traces(marker) == dict.fromkeys(_traces(marker), False)


@pytest.mark.parametrize(
    'case', ['os.system', '__builtins__', '__subclasses__']
)
def test_crafted_legacy_format_is_refused(
    tmp_path, case, weights_only_default, clean_namespaces
):
    """The pre-1.6 format (one pickle stream) goes through the same
    weights-only unpickler."""
    path = _write(tmp_path, case, legacy=True)
    marker = str(tmp_path / 'marker')

    with pytest.raises(pickle.UnpicklingError, match=REFUSED[case]):
        _torch_load(path)

    assert not any(_traces(marker).values())


@pytest.mark.parametrize('case', ['os.system', 'eval', '__globals__'])
def test_converter_refuses_crafted_checkpoint(
    tmp_path, case, weights_only_default, clean_namespaces
):
    path = _write(tmp_path, case)
    marker = str(tmp_path / 'marker')

    with pytest.raises(ConversionError, match='weights_only=True'):
        load_authors_checkpoint(path)

    assert not any(_traces(marker).values())


def test_converter_allow_pickle_runs_the_file(tmp_path, weights_only_default):
    """What docs/troubleshooting.md says of ``--allow-pickle``: the file is
    then unpickled with ``weights_only=False`` and its code runs."""
    path = _write(tmp_path, 'eval')
    marker = str(tmp_path / 'marker')

    with pytest.warns(UserWarning, match='--allow-pickle was given'):
        loaded = read_checkpoint(path, allow_pickle=True)

    assert os.path.exists(marker)
    assert loaded['payload'] is None  # eval's result


def test_getattr_serves_only_the_history_buffer_statistics():
    """The restricted ``builtins.getattr`` a checkpoint gets: exactly the
    four statistics methods MMEngine's message hub pickles."""
    for name in ('current', 'max', 'mean', 'min'):
        assert checkpoint_getattr(HistoryBuffer, name) is getattr(
            HistoryBuffer, name
        )
    refused = [
        (HistoryBuffer, '__init__'),
        (HistoryBuffer, '_statistics_methods'),
        (HistoryBuffer, 'register_statistics'),
        (HistoryBuffer.min, '__globals__'),
        (HistoryBuffer(), 'min'),  # an instance: a bound method
        (type('HistoryBuffer', (), {'min': 1}), 'min'),  # same name only
        (getattr, '__self__'),
        (os, 'system'),
        (HistoryBuffer, 1),
    ]
    for obj, name in refused:
        with pytest.raises(
            pickle.UnpicklingError, match='mmst refused'
        ) as info:
            checkpoint_getattr(obj, name)
        assert repr(name) in str(info.value) or 'int' in str(info.value)
        # what is allowed is named too
        assert "'current', 'max', 'mean', 'min'" in str(info.value)
    with pytest.raises(pickle.UnpicklingError, match='default'):
        checkpoint_getattr(HistoryBuffer, 'min', None)


def test_real_getattr_added_by_other_code_is_removed():
    """If other code put the real ``builtins.getattr`` on the list, the two
    entries would share one name and either could win; mmst takes it off
    and says so."""
    torch.serialization.add_safe_globals([getattr])
    with pytest.warns(UserWarning, match='builtins.getattr'):
        allow_mmengine_checkpoint_globals()
    listed = torch.serialization.get_safe_globals()
    assert getattr not in listed
    assert not any(isinstance(g, tuple) and g[0] is getattr for g in listed), (
        listed
    )
    assert (checkpoint_getattr, 'builtins.getattr') in listed


def test_allow_list_names_resolve_to_the_restricted_stand_ins():
    """What torch's weights-only unpickler resolves each name to (its own
    name table) after ``import mmst``."""
    allow_mmengine_checkpoint_globals()
    table = torch._weights_only_unpickler._get_user_allowed_globals()

    assert table['builtins.getattr'] is checkpoint_getattr
    assert table['numpy.ndarray'] is NDArrayArgument
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        assert table[f'{module}._reconstruct'].__module__ == (
            'mmst.engine.safe_globals'
        )
    assert getattr not in table.values()
    # the real ndarray is listed (torch's BUILD checks the class of a
    # rebuilt array) only under keys no GLOBAL can spell: GLOBAL looks up
    # ``module.name``, always with a dot
    ndarray_keys = [k for k, v in table.items() if v is np.ndarray]
    assert ndarray_keys and all('.' not in k for k in ndarray_keys)
