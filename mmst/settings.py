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
from contextlib import contextmanager
from typing import Any, Iterator, Optional

#: The note added to a foreign error raised while a nested setting is built.
_NOTE = 'while building the setting {}'


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
def setting_prefix(prefix: Optional[str]) -> Iterator[None]:
    """Errors raised inside name their setting under ``prefix``.

    A :class:`SettingError` is re-raised with its key under ``prefix``
    (same traceback). Any other exception (an upstream component's) gets
    a note ``while building the setting <prefix>`` (a nested
    ``setting_prefix`` updates the note to the full key instead of adding
    one). ``prefix=None`` changes nothing.

    Args:
        prefix (str, optional): The parent key, e.g. ``'distill'``,
            ``'model'``, ``'val_cfg'``.
    """
    if not prefix:
        yield
        return
    try:
        yield
    except SettingError as e:
        raise e.nested(prefix).with_traceback(e.__traceback__) from None
    except Exception as e:
        inner = getattr(e, '_mmst_setting', None)
        notes = getattr(e, '__notes__', None)
        if inner is not None and notes and notes[-1] == _NOTE.format(inner):
            full = f'{prefix}.{inner}'
            notes[-1] = _NOTE.format(full)
        else:
            full = prefix
            e.add_note(_NOTE.format(full))
        e._mmst_setting = full
        raise


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
