"""Checking settings (config values): one message form for mmst's
components, and the full dotted key a user writes in the config.

A component checks its own arguments and names them as its own keys
(``temperature``); the component that builds it from a nested setting
wraps the build in :func:`setting_prefix` (``distill``), and so on up to
the config's root (:func:`mmst.apis.check_config` adds ``model`` and
``val_cfg``), so that the error names ``model.distill.temperature``, the
key a ``--cfg-options`` override would use.

This module imports nothing but the standard library.
"""

import numbers
import os
from contextlib import contextmanager
from types import FrameType, TracebackType
from typing import Any, Iterator, Optional, Tuple

#: The note added to a foreign error raised while a nested setting is built.
_NOTE = 'while building the setting {}'
#: MMEngine's function that builds a component from its config dict.
_BUILD = ('build_from_cfg', os.path.join('registry', 'build_functions.py'))


def _is_build(frame: FrameType) -> bool:
    code = frame.f_code
    return code.co_name == _BUILD[0] and code.co_filename.endswith(_BUILD[1])


def _builds_between(
    tb: Optional[TracebackType], stop: Optional[FrameType]
) -> Tuple[int, Optional[type]]:
    """Registry builds (MMEngine's ``build_from_cfg`` calls) on the
    traceback ``tb``, down to the frame ``stop`` (or the raise), and the
    class of the object the last of them was building (None: unknown)."""
    count, built, after_build = 0, None, False
    while tb is not None and tb.tb_frame is not stop:
        if _is_build(tb.tb_frame):
            count, after_build = count + 1, True
        elif after_build:  # the constructor the build called
            obj = tb.tb_frame.f_locals.get('self')
            built = type(obj) if obj is not None else None
            after_build = False
        tb = tb.tb_next
    return count, built


def _walk(value: Any, path: str = '') -> Iterator[Tuple[str, dict]]:
    """Every dict inside ``value`` (itself included) with its dotted path
    relative to ``value`` (``''``, ``'backbone'``, ``'heads[0]'``)."""
    if isinstance(value, dict):
        yield path, value
        for key, item in value.items():
            yield from _walk(item, f'{path}.{key}' if path else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk(item, f'{path}[{i}]')


def _config_path(cfg: Any, cls: Optional[type]) -> Optional[str]:
    """The path, inside the config ``cfg``, of the one dict below its root
    whose ``type`` names ``cls`` (``'mmst.ElasticResNet'``,
    ``'ElasticResNet'`` or the class); None when none or several do."""
    if cls is None:
        return None
    paths = [
        path
        for path, item in _walk(cfg)
        if path
        and (
            item.get('type') is cls
            or (
                isinstance(item.get('type'), str)
                and item['type'].rsplit('.', 1)[-1] == cls.__name__
            )
        )
    ]
    return paths[0] if len(paths) == 1 else None


class SettingError(ValueError):
    """An invalid setting. The message starts with the key:
    ``<key><rest>``, e.g. ``temperature=0 is invalid; allowed: a number >
    0``; :meth:`nested` puts a parent key in front.

    Args:
        key (str): The setting, relative to the component that raises
            (``'temperature'``, ``'depths[0]'``).
        rest (str): The message after the key.
    """

    def __init__(self, key: str, rest: str = '') -> None:
        self.key = key
        self.rest = rest
        super().__init__(key + rest)

    def __reduce__(self):
        return type(self), (self.key, self.rest)

    def nested(self, prefix: str) -> 'SettingError':
        """The same error, its key under ``prefix`` (``'distill'`` +
        ``'temperature'`` -> ``'distill.temperature'``)."""
        sep = '' if self.key.startswith('[') else '.'
        error = type(self)(f'{prefix}{sep}{self.key}', self.rest)
        error.__cause__ = self.__cause__
        for note in getattr(self, '__notes__', ()):
            error.add_note(note)
        return error


def invalid(key: str, value: Any, allowed: str) -> SettingError:
    """``<key>=<value!r> is invalid; allowed: <allowed>``."""
    return SettingError(key, f'={value!r} is invalid; allowed: {allowed}')


@contextmanager
def setting_prefix(prefix: Optional[str], cfg: Any = None) -> Iterator[None]:
    """Errors raised inside name their setting under ``prefix``.

    A :class:`SettingError` of the component built inside is re-raised
    with its key under ``prefix`` (same traceback). When an upstream
    component built the one that raised (``ImageClassifier`` building an
    ``mmst.ElasticResNet_CIFAR`` backbone: two registry builds deep), its
    place is looked up in ``cfg``: the one dict whose ``type`` names its
    class (``prefix.backbone``). Any other exception (an upstream
    component's, or a SettingError whose place is not found) gets a note
    ``while building the setting <prefix>`` (a nested ``setting_prefix``
    updates the note to the full key instead of adding one).
    ``prefix=None`` changes nothing.

    Args:
        prefix (str, optional): The parent key, e.g. ``'distill'``,
            ``'model'``, ``'val_cfg'``.
        cfg (dict, optional): The config being built under ``prefix``.
    """
    if not prefix:
        yield
        return
    try:
        yield
    except SettingError as e:
        # e.__traceback__: this generator, the frame of the ``with``, ...
        tb = e.__traceback__
        with_frame = tb.tb_next.tb_frame if tb and tb.tb_next else None
        inner = getattr(e, '_mmst_with_frame', None)
        builds, built = _builds_between(tb.tb_next if tb else None, inner)
        full = prefix if builds <= 1 else None
        if full is None and (path := _config_path(cfg, built)):
            full = f'{prefix}.{path}'
        if full is not None and not getattr(e, '_mmst_setting', None):
            error = e.nested(full).with_traceback(e.__traceback__)
            error._mmst_with_frame = with_frame
            raise error from None
        _note_setting(e, prefix)
        raise
    except Exception as e:
        _note_setting(e, prefix)
        raise


def _note_setting(e: BaseException, prefix: str) -> None:
    """Add (or complete) the note naming the setting being built."""
    inner = getattr(e, '_mmst_setting', None)
    notes = getattr(e, '__notes__', None)
    if inner is not None and notes and notes[-1] == _NOTE.format(inner):
        full = f'{prefix}.{inner}'
        notes[-1] = _NOTE.format(full)
    else:
        full = prefix
        e.add_note(_NOTE.format(full))
    e._mmst_setting = full


def check_int(
    key: str,
    value: Any,
    minimum: Optional[int] = None,
    allow_none: bool = False,
) -> Optional[int]:
    """``value`` if it is an integer (not a bool: ``True`` is an int in
    Python, and ``num_subnets=True`` must not train as 1) >= ``minimum``.

    Args:
        key (str): The setting, for the message.
        value: The value.
        minimum (int, optional): The smallest allowed value.
        allow_none (bool): Accept None too. Defaults to False.

    Returns:
        int | None: ``value``.

    Raises:
        SettingError: ``<key>=<value> is invalid; allowed: an integer >=
            <minimum>`` (``or None``).
    """
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or (minimum is not None and value < minimum)
    ):
        allowed = 'an integer' + (
            f' >= {minimum}' if minimum is not None else ''
        )
        allowed += ' (not a bool)' if isinstance(value, bool) else ''
        raise invalid(
            key, value, allowed + (', or None' if allow_none else '')
        )
    return int(value)


def check_number(
    key: str,
    value: Any,
    positive: bool = False,
    allow_none: bool = False,
) -> Optional[float]:
    """``value`` if it is a real number (not a bool), > 0 when
    ``positive``; NaN is refused.

    Raises:
        SettingError: ``<key>=<value> is invalid; allowed: a number``
            (``> 0``).
    """
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or value != value  # NaN
        or (positive and not value > 0)
    ):
        allowed = 'a number' + (' > 0' if positive else '')
        allowed += ' (not a bool)' if isinstance(value, bool) else ''
        raise invalid(
            key, value, allowed + (', or None' if allow_none else '')
        )
    return value
