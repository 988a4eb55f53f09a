"""Atomic file writes: the one writer of every file mmst produces that a
kill or a full disk must not leave half-written (training checkpoints
through :class:`mmst.engine.AtomicLocalBackend`, exported sub-networks,
converted weights, the depth menu's JSON, the work-dir lock).

:func:`write_atomic` writes a temporary file next to the destination,
``.<name>.<host>.<pid>.<random>.tmp``, flushes and ``fsync``-s it, renames
it over the destination (``os.replace``, atomic on POSIX file systems) and
``fsync``-s the folder. A reader sees the old file or the complete new
one, never a truncated one. A failed write (an error, Ctrl-C, ``ENOSPC``)
removes its temporary file; a process killed during the write (kill -9,
power loss) runs no cleanup, and the next write of the same destination on
the same machine removes its temporary file with a warning
(:func:`remove_stale_temp_files`; a whole folder:
:func:`remove_stale_temporaries`).

Standard library only (``torch`` is imported by :func:`save_atomic` when
called), so it can be loaded by path, without ``import mmst``
(``mmst/converters/st_weights.py`` does).
"""

import json
import os
import re
import socket
import tempfile
import warnings
from typing import IO, Any, Callable, List, Union

__all__ = [
    'remove_stale_temp_files',
    'remove_stale_temporaries',
    'save_atomic',
    'temp_file_prefix',
    'write_atomic',
    'write_json_atomic',
]

PathLike = Union[str, os.PathLike]
#: What :func:`write_atomic` writes: bytes, text (UTF-8), or a function that
#: writes into the open binary file.
Content = Union[bytes, str, Callable[[IO[bytes]], Any]]


def _host() -> str:
    """This machine's name as it goes into temporary file names (no path
    separators)."""
    return re.sub(r'[^A-Za-z0-9_.-]', '_', socket.gethostname()) or 'host'


def _pid_running(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (a zombie counts as
    running; outside POSIX every process is assumed to run)."""
    if pid == os.getpid():
        return True
    if os.name != 'posix':
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it runs as another user
        return True
    return True


def temp_file_prefix(path: PathLike) -> str:
    """The name prefix of this process's temporary files for ``path``:
    ``.<name>.<host>.<pid>.`` (then random characters and ``.tmp``)."""
    name = os.path.basename(os.fspath(path))
    return f'.{name}.{_host()}.{os.getpid()}.'


def _remove_stale(folder: str, pattern: 're.Pattern') -> List[tuple]:
    """Remove the files of ``folder`` whose name matches ``pattern`` (group
    ``pid``) and whose process no longer runs; ``[(path, pid)]``."""
    removed = []
    try:
        entries = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in sorted(entries):
        match = pattern.fullmatch(entry)
        if not match or _pid_running(int(match.group('pid'))):
            continue
        stale = os.path.join(folder, entry)
        try:
            os.unlink(stale)
        except FileNotFoundError:
            continue  # removed by a concurrent writer
        removed.append((stale, match.group('pid')))
    return removed


def remove_stale_temp_files(path: PathLike) -> List[str]:
    """Remove the temporary files that :func:`write_atomic` left for
    ``path`` in processes of this machine that no longer run (a kill -9 or
    a power loss during a write: no cleanup code runs then). Files of a
    running process, of another machine (a shared folder) or of another
    destination are kept. Each removal is reported with a warning.

    Returns:
        list[str]: The paths removed.
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    pattern = re.compile(
        re.escape(f'.{name}.{_host()}.') + r'(?P<pid>\d+)\.[^.]+\.tmp'
    )
    removed = []
    for stale, pid in _remove_stale(folder, pattern):
        removed.append(stale)
        warnings.warn(
            f'removed {stale}: a temporary file of {name} left by process '
            f'{pid}, which no longer runs (killed while writing)',
            stacklevel=2,
        )
    return removed


def remove_stale_temporaries(folder: PathLike) -> List[str]:
    """Remove every temporary file of :func:`write_atomic` in ``folder``
    whose process (on this machine) no longer runs, whatever its
    destination (a checkpoint folder at the start of training).

    Returns:
        list[str]: The removed files.
    """
    pattern = re.compile(
        r'\..+\.' + re.escape(_host()) + r'\.(?P<pid>\d+)\.[^.]+\.tmp'
    )
    return [p for p, _ in _remove_stale(os.fspath(folder), pattern)]


def write_atomic(data: Content, path: PathLike) -> None:
    """Write ``data`` to ``path`` atomically (see the module's docstring):
    a reader sees the old content or the complete new one; after a crash
    ``path`` holds one of them.

    Args:
        data (bytes | str | callable): The content (``str``: UTF-8), or a
            function writing it into the open binary file (e.g.
            ``lambda f: torch.save(obj, f)``).
        path (str | PathLike): The destination; its folder is created if
            needed. The file gets the usual permissions (``0666 & ~umask``).

    Raises:
        OSError: The write failed (e.g. ``ENOSPC``, ``EFBIG``); ``path`` is
            unchanged and the temporary file is removed. Any error of a
            writing function is raised the same way.
    """
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    remove_stale_temp_files(path)
    if isinstance(data, str):
        data = data.encode('utf-8')
    fd, tmp = tempfile.mkstemp(
        prefix=temp_file_prefix(path), suffix='.tmp', dir=folder
    )
    os.close(fd)  # reopened by name: one open() for every write
    try:
        with open(tmp, 'wb') as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates it 0600
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. a platform without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomic(obj: Any, path: PathLike) -> None:
    """``torch.save(obj)`` to ``path`` through :func:`write_atomic`.

    Raises:
        OSError: as :func:`write_atomic`; a pickling error of ``obj`` leaves
            ``path`` unchanged too.
    """
    import torch

    write_atomic(lambda f: torch.save(obj, f), path)


def write_json_atomic(obj: Any, path: PathLike, indent: int = 1) -> None:
    """``obj`` as JSON (``indent`` spaces) to ``path`` through
    :func:`write_atomic`."""
    write_atomic(json.dumps(obj, indent=indent), path)
