"""One run per work dir: a lock file in the work dir while a run uses it.

Two trainings in one work dir mix silently: one log with interleaved
iterations, one scalars file, checkpoints from whichever wrote last, the
config copy of the other run. :func:`acquire` creates
``WORK_DIR/mmst_run.lock`` atomically (``O_CREAT | O_EXCL``) holding this
run's host, PID, start time and command; a second run in the same work dir
is refused with :class:`WorkDirLockedError` naming the first. A lock left
by a process that is gone (killed, crashed, the machine restarted) on
this host is taken over, with a WARNING line saying whose it was (one
taker at a time, under ``mmst_run.lock.takeover``; the stale file is
replaced by a rename, so the lock file never disappears and a run starting
meanwhile cannot slip in); a lock from another host cannot be checked from
here and is refused, with the command that removes it if the user is sure
that run has ended.

In a distributed run (a running ``torch.distributed`` process group of
more than one rank) only rank 0 touches the file, and every rank learns
its outcome (one broadcast), so that all ranks start, or all raise.

Usage (tools/train.py; a hook can call :func:`acquire` with
``reentrant=True``, so that it does not refuse a lock tools/train.py took
in the same process, and keep the handle until the run ends)::

    with acquire(cfg.work_dir):
        runner = Runner.from_cfg(cfg)
        runner.train()

The module imports only the standard library at import time.
"""

import atexit
import json
import os
import os.path as osp
import shlex
import socket
import sys
import time
import uuid
from typing import Dict, Optional, Tuple

from mmst.fileio import write_atomic

#: The lock file's name inside the work dir.
LOCK_FILE = 'mmst_run.lock'
#: Held (``O_EXCL``) for the few milliseconds of a stale lock's takeover.
TAKEOVER_SUFFIX = '.takeover'
#: How long :func:`acquire` retries a lock that vanishes or changes under
#: it (other runs starting at the same moment), seconds.
RETRY_SECONDS = 5.0

# work dir (absolute) -> the handle this process holds on it
_HELD: Dict[str, 'WorkDirLock'] = {}


class WorkDirLockedError(RuntimeError):
    """The work dir is in use by another run (or its lock cannot be
    checked); the message names that run (host, PID, start time, command)
    and the lock file."""


def _boot_id() -> Optional[str]:
    try:
        with open('/proc/sys/kernel/random/boot_id') as f:
            return f.read().strip() or None
    except OSError:
        return None


def _proc_stat(pid: int) -> Optional[Tuple[str, str]]:
    """(state, start time in clock ticks since boot) of ``pid`` from
    ``/proc``; ``None`` where there is no such file (no such process, or
    no ``/proc``)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]  # fields 3 (state) and 22 (starttime)


def _new_record(work_dir: str, command: Optional[str]) -> dict:
    pid = os.getpid()
    stat = _proc_stat(pid)
    now = time.time()
    return dict(
        host=socket.gethostname(),
        pid=pid,
        started=time.strftime('%Y-%m-%d %H:%M:%S %z', time.localtime(now)),
        command=command if command is not None else shlex.join(sys.argv),
        work_dir=work_dir,
        started_unix=now,
        pid_start=stat[1] if stat else None,
        boot_id=_boot_id(),
        token=uuid.uuid4().hex,
    )


def describe(record: dict) -> str:
    """``host H, PID P, started T, command: C`` of a lock record."""
    return (
        f'host {record.get("host")}, PID {record.get("pid")}, started '
        f'{record.get("started", "?")}, command: '
        f'{record.get("command", "?")}'
    )


class _Unreadable(Exception):
    pass


def _read_once(path: str) -> Optional[dict]:
    """The lock record at ``path``; ``None`` when there is no file.

    Raises:
        _Unreadable: the file is not a lock record (its text as args[0]).
    """
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    text = raw.decode('utf-8', 'replace')
    try:
        record = json.loads(text)
    except ValueError:
        raise _Unreadable(text) from None
    if (
        not isinstance(record, dict)
        or not isinstance(record.get('host'), str)
        or not isinstance(record.get('pid'), int)
        or isinstance(record.get('pid'), bool)
    ):
        raise _Unreadable(text)
    return record


def read_lock(work_dir: str, wait: float = 0.5) -> Optional[dict]:
    """The lock record of ``work_dir`` (keys ``host``, ``pid``,
    ``started``, ``command``, ...), or ``None`` when it is not locked.

    Args:
        work_dir (str): The work dir.
        wait (float): How long (seconds) to re-read a file that is not a
            record yet (created, not yet written, by a run starting now).

    Raises:
        WorkDirLockedError: the lock file stays unreadable; the message
            says how to remove it.
    """
    path = osp.join(osp.abspath(work_dir), LOCK_FILE)
    deadline = time.monotonic() + wait
    while True:
        try:
            return _read_once(path)
        except _Unreadable as e:
            if time.monotonic() >= deadline:
                raise WorkDirLockedError(
                    f'work dir {osp.dirname(path)}: the lock file {path} is '
                    f'not a lock record ({e.args[0][:200]!r}): a run may be '
                    'creating it, or one crashed while writing it. If no '
                    'run uses this work dir, remove it and start again: rm '
                    f'{shlex.quote(path)}'
                ) from None
            time.sleep(0.05)


def _liveness(record: dict) -> Tuple[bool, str]:
    """(alive, why not) of a record written on this host."""
    pid = record['pid']
    boot = _boot_id()
    if record.get('boot_id') and boot and record['boot_id'] != boot:
        return False, 'this host has restarted since (another boot id)'
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, f'no process {pid} runs on this host'
    except PermissionError:
        pass  # alive, another user's
    stat = _proc_stat(pid)
    if stat is not None:
        if stat[0] in ('Z', 'X', 'x'):
            return False, f'process {pid} has exited'
        if record.get('pid_start') and record['pid_start'] != stat[1]:
            return False, (
                f'PID {pid} is now another process (started after the run)'
            )
    return True, ''


class WorkDirLock:
    """A work dir lock (:func:`acquire`); :meth:`release` (or leaving the
    ``with`` block) removes the lock file if this process owns it.

    Attributes:
        work_dir (str): The work dir, absolute.
        path (str): The lock file.
        record (dict | None): The record written (host, pid, started,
            command, ...); ``None`` on a rank other than 0 and for a
            re-entered lock.
        owner (bool): Whether this handle removes the file on release.
        note (str | None): The takeover note, when a stale lock was taken
            over.
    """

    def __init__(
        self,
        work_dir: str,
        record: Optional[dict] = None,
        owner: bool = False,
        note: Optional[str] = None,
    ):
        self.work_dir = work_dir
        self.path = osp.join(work_dir, LOCK_FILE)
        self.record = record
        self.owner = owner
        self.note = note
        self._released = False

    @property
    def held(self) -> bool:
        return self.owner and not self._released

    def release(self) -> None:
        """Remove the lock file if this handle owns it (idempotent). A
        lock file that is gone or holds another run's record is left as
        it is, with a WARNING."""
        if not self.owner or self._released:
            return
        self._released = True
        if _HELD.get(self.work_dir) is self:
            del _HELD[self.work_dir]
        atexit.unregister(self.release)
        try:
            current = _read_once(self.path)
        except _Unreadable:
            current = {}
        if current and current.get('token') == self.record['token']:
            os.unlink(self.path)
            return
        _warn(
            f'work dir {self.work_dir}: the lock file {self.path} was '
            + (
                f'replaced while this run held it (now: {describe(current)})'
                if current
                else 'removed while this run held it'
            )
            + '; left as it is'
        )

    def __enter__(self) -> 'WorkDirLock':
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __repr__(self) -> str:
        return (
            f'WorkDirLock({self.work_dir!r}, owner={self.owner}, '
            f'held={self.held})'
        )


def _warn(message: str) -> None:
    """A WARNING line: MMEngine's current logger where MMEngine is loaded
    (every tool), else Python's logging (stderr)."""
    import logging

    if 'mmengine.logging' not in sys.modules:
        logging.getLogger('mmst.work_dir_lock').warning(message)
        return
    from mmengine.logging import print_log

    print_log(message, 'current', logging.WARNING)


def _hold(work_dir: str, record: dict, note: Optional[str]) -> WorkDirLock:
    handle = WorkDirLock(work_dir, record, owner=True, note=note)
    _HELD[work_dir] = handle
    atexit.register(handle.release)
    return handle


def _take_over(
    path: str, stale: dict, reason: str, record: dict
) -> Optional[str]:
    """Replace the stale lock ``stale`` at ``path`` by ``record`` if the
    file still holds it, under the takeover mutex (one taker at a time)
    and by a rename (the lock file never disappears, so no run starting
    meanwhile can create its own). Returns the note (also logged as a
    WARNING), or ``None`` when another process is taking over or the file
    changed (the caller looks again)."""
    mutex = path + TAKEOVER_SUFFIX
    try:
        fd = os.open(mutex, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:  # a takeover takes milliseconds: this one's process died
            if time.time() - os.stat(mutex).st_mtime > 30:
                os.unlink(mutex)
        except FileNotFoundError:
            pass
        time.sleep(0.05)
        return None
    try:
        try:
            current = _read_once(path)
        except _Unreadable:
            return None
        if current != stale:
            return None
        write_atomic(json.dumps(record, indent=1) + '\n', path)
    finally:
        os.close(fd)
        os.unlink(mutex)
    note = (
        f'work dir {osp.dirname(path)}: taking over the lock of a run that '
        f'is no longer running ({reason}): {describe(stale)}; its files in '
        'the work dir are kept'
    )
    _warn(note)
    return note


def _acquire_here(
    work_dir: str, command: Optional[str], reentrant: bool
) -> WorkDirLock:
    if reentrant and work_dir in _HELD:
        return WorkDirLock(work_dir)
    os.makedirs(work_dir, exist_ok=True)
    path = osp.join(work_dir, LOCK_FILE)
    host = socket.gethostname()
    deadline = time.monotonic() + RETRY_SECONDS
    while time.monotonic() < deadline:
        record = _new_record(work_dir, command)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, 'w') as f:
                f.write(json.dumps(record, indent=1) + '\n')
            return _hold(work_dir, record, None)
        other = read_lock(work_dir)
        if other is None:
            continue  # released meanwhile
        if other['host'] != host:
            raise WorkDirLockedError(
                f'work dir {work_dir} is locked by a run on another host: '
                f'{describe(other)}. From this host ({host}) mmst cannot '
                'tell whether that run is still going. If you are sure it '
                'has ended, remove the lock file and start again: rm '
                f'{shlex.quote(path)}'
            )
        alive, reason = _liveness(other)
        if alive:
            whose = (
                'this process (a lock it has not released)'
                if other['pid'] == os.getpid()
                else 'another run'
            )
            raise WorkDirLockedError(
                f'work dir {work_dir} is in use by {whose}: '
                f'{describe(other)}. Two runs in one work dir mix their '
                'logs, scalars and checkpoints; wait for that run to end, '
                f'stop it, or use another --work-dir (lock file: {path})'
            )
        note = _take_over(path, other, reason, record)
        if note is not None:
            return _hold(work_dir, record, note)
    raise WorkDirLockedError(
        f'work dir {work_dir}: could not take the lock {path} within '
        f'{RETRY_SECONDS:g} s: it kept changing (other runs starting in '
        'this work dir at the same time?)'
    )


def _world() -> Tuple[int, int]:
    if 'torch' not in sys.modules:
        return 0, 1
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def acquire(
    work_dir: str, command: Optional[str] = None, reentrant: bool = False
) -> WorkDirLock:
    """Lock ``work_dir`` for this run (creating the folder if needed).

    Args:
        work_dir (str): The run's work dir.
        command (str, optional): The command line recorded in the lock
            (default: ``sys.argv``, shell-quoted).
        reentrant (bool): When this process holds the lock already, return
            a handle that does not release it (for a hook that locks what
            tools/train.py may have locked) instead of refusing.

    Returns:
        WorkDirLock: The handle; ``release()`` or a ``with`` block removes
        the file (it is also removed at interpreter exit if still held).
        On ranks other than 0 of a distributed run the handle owns
        nothing.

    Raises:
        WorkDirLockedError: another live run on this host holds the lock,
            a run on another host does (cannot be checked), or the lock
            file is unreadable; on every rank of a distributed run. The
            message names the holder (host, PID, start time, command) and
            the lock file.
    """
    work_dir = osp.abspath(work_dir)
    rank, world = _world()
    if world == 1:
        return _acquire_here(work_dir, command, reentrant)

    import torch.distributed as dist

    handle, error, outcome = None, None, [None]
    if rank == 0:
        try:
            handle = _acquire_here(work_dir, command, reentrant)
            outcome = [('ok', '')]
        except WorkDirLockedError as e:
            error, outcome = e, [('locked', str(e))]
        except Exception as e:  # noqa: BLE001 - told to the other ranks
            error, outcome = e, [('error', f'{type(e).__name__}: {e}')]
    dist.broadcast_object_list(outcome, src=0)
    if rank == 0:
        if error is not None:
            raise error
        return handle
    kind, text = outcome[0]
    if kind == 'locked':
        raise WorkDirLockedError(f'{text} [rank {rank}: told by rank 0]')
    if kind == 'error':
        raise RuntimeError(
            f'rank {rank}: rank 0 could not lock the work dir {work_dir}: '
            f'{text}'
        )
    return WorkDirLock(work_dir)
