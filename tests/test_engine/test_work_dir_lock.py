"""One run per work dir (mmst/engine/work_dir_lock.py): a second run is
refused naming the first; a stale lock is taken over with a note; a
foreign host's lock is refused with the command that removes it; and
tools/train.py refuses a locked work dir before writing anything in it.

The other holder is a real process, forked from this one (mmst is imported
already, so it starts in milliseconds), that holds the lock until told
over a pipe."""

import json
import multiprocessing
import os
import socket
import subprocess
from pathlib import Path

import pytest
from mmengine.logging import MMLogger

from mmst.engine import work_dir_lock as wdl
from mmst.engine.work_dir_lock import LOCK_FILE, WorkDirLockedError
from tests.test_distributed.common import (
    REPO,
    require_fashion_mnist,
    run_tool,
)

CT_CONFIG = REPO / 'configs/mmpretrain/fashion_mnist/resnet20_ct_fmnist.py'
FORK = multiprocessing.get_context('fork')


def _receive(conn, timeout: float = 60.0) -> str:
    """The next message on ``conn``; fails after ``timeout`` seconds."""
    assert conn.poll(timeout), f'no message in {timeout} s'
    return conn.recv()


def _send(conn, message: str) -> None:
    """Send ``message`` unless the other end has exited already."""
    try:
        conn.send(message)
    except OSError:  # BrokenPipeError: the process is gone
        pass


def _hold(work_dir: str, conn) -> None:
    """Forked: hold the lock of ``work_dir`` until told to release."""
    handle = wdl.acquire(work_dir, command='train.py FIRST-RUN')
    conn.send('locked')
    _receive(conn, timeout=600)
    handle.release()


def _race(work_dir: str, conn) -> None:
    """Forked: try to take the lock of ``work_dir`` when told to."""
    conn.send('ready')
    _receive(conn)  # all start together
    try:
        handle = wdl.acquire(work_dir)
        conn.send(f'won {handle.note is not None}')
        _receive(conn)
        handle.release()
    except WorkDirLockedError:
        conn.send('refused')


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds the lock of a work dir; yields a function
    ``hold(work_dir) -> Process`` (its PID holds the lock)."""
    procs = []

    def hold(work_dir: Path) -> multiprocessing.Process:
        conn, child = FORK.Pipe()
        proc = FORK.Process(target=_hold, args=(str(work_dir), child))
        proc.start()
        procs.append((proc, conn))
        assert _receive(conn) == 'locked'
        return proc

    yield hold
    for proc, conn in procs:
        _send(conn, 'release')
        proc.join(timeout=10)


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen(['true'])
    proc.wait()
    return proc.pid


def write_lock(work_dir: Path, **record) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    path = work_dir / LOCK_FILE
    path.write_text(json.dumps(record))
    return path


def test_second_acquire_in_this_process_is_refused(tmp_path):
    work = tmp_path / 'work'
    with wdl.acquire(work, command='train.py A') as first:
        record = json.loads((work / LOCK_FILE).read_text())
        assert record['pid'] == os.getpid()
        assert record['host'] == socket.gethostname()
        assert record['command'] == 'train.py A'
        with pytest.raises(WorkDirLockedError) as info:
            wdl.acquire(work, command='train.py B')
        message = str(info.value)
        assert 'in use by this process' in message
        assert f'PID {os.getpid()}' in message
        assert f'host {socket.gethostname()}' in message
        assert record['started'] in message
        assert 'command: train.py A' in message
        assert str(work / LOCK_FILE) in message
        # a hook inside a locked run may re-enter without owning it
        nested = wdl.acquire(work, reentrant=True)
        assert not nested.owner
        nested.release()
        assert (work / LOCK_FILE).is_file()
        assert first.held
    assert not (work / LOCK_FILE).exists()
    with pytest.raises(ZeroDivisionError):  # released on exceptions too
        with wdl.acquire(work):
            raise ZeroDivisionError
    assert not (work / LOCK_FILE).exists()
    wdl.acquire(work).release()


def test_another_live_process_holds_the_lock(tmp_path, holder):
    work = tmp_path / 'work'
    proc = holder(work)
    with pytest.raises(WorkDirLockedError) as info:
        wdl.acquire(work)
    message = str(info.value)
    assert (
        f'in use by another run: host {socket.gethostname()}, PID ' in message
    )
    assert f'PID {proc.pid},' in message
    assert 'command: train.py FIRST-RUN' in message
    assert json.loads((work / LOCK_FILE).read_text())['pid'] == proc.pid


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    # the current MMEngine logger, writing to a file: where the note goes
    log = tmp_path / 'note.log'
    MMLogger.get_instance(f'lock_note_{tmp_path.name}', log_file=str(log))
    work = tmp_path / 'work'
    pid = dead_pid()
    write_lock(
        work,
        host=socket.gethostname(),
        pid=pid,
        started='2026-01-01 00:00:00 +0000',
        command='train.py KILLED',
    )
    with wdl.acquire(work) as handle:
        assert handle.owner
        assert json.loads((work / LOCK_FILE).read_text())['pid'] == os.getpid()
    expected = (
        f'work dir {work}: taking over the lock of a run that is no longer '
        f'running (no process {pid} runs on this host): host '
        f'{socket.gethostname()}, PID {pid}, started 2026-01-01 00:00:00 '
        '+0000, command: train.py KILLED; its files in the work dir are kept'
    )
    assert handle.note == expected
    assert f'WARNING - {expected}' in log.read_text()


def test_reused_pid_is_stale(tmp_path):
    """The lock's PID runs, but it is another process (started later)."""
    work = tmp_path / 'work'
    write_lock(
        work,
        host=socket.gethostname(),
        pid=os.getpid(),
        pid_start='1',
        started='then',
        command='old',
    )
    with wdl.acquire(work) as handle:
        assert 'is now another process' in handle.note


def test_lock_of_another_host_is_refused_with_the_remove_command(tmp_path):
    work = tmp_path / 'work'
    path = write_lock(
        work,
        host='gpu-node-7',
        pid=os.getpid(),
        started='2026-01-01 00:00:00 +0000',
        command='train.py ELSEWHERE',
    )
    with pytest.raises(WorkDirLockedError) as info:
        wdl.acquire(work)
    message = str(info.value)
    assert 'locked by a run on another host: host gpu-node-7' in message
    assert 'command: train.py ELSEWHERE' in message
    assert message.endswith(f'rm {path}')
    assert path.is_file()  # left alone


def test_unreadable_lock_is_refused(tmp_path):
    path = write_lock(tmp_path / 'work')
    path.write_text('garbage')
    with pytest.raises(WorkDirLockedError, match='not a lock record.*rm '):
        wdl.read_lock(tmp_path / 'work', wait=0.1)


@pytest.mark.parametrize('stale', [False, True])
def test_simultaneous_starts_one_wins(tmp_path, stale):
    """Six processes start in one work dir at the same moment, on a free
    work dir or on a stale lock: exactly one holds the lock, and on a
    stale lock it is the one that took it over."""
    work = tmp_path / 'work'
    if stale:
        write_lock(work, host=socket.gethostname(), pid=dead_pid())
    procs, conns = [], []
    for _ in range(6):
        conn, child = FORK.Pipe()
        procs.append(FORK.Process(target=_race, args=(str(work), child)))
        conns.append(conn)
        procs[-1].start()
    try:
        for conn in conns:
            assert _receive(conn) == 'ready'
        for conn in conns:
            conn.send('go')
        outcomes = [_receive(conn).split() for conn in conns]
    finally:
        for proc, conn in zip(procs, conns):
            _send(conn, 'end')
            proc.join(timeout=10)
    assert sorted(o[0] for o in outcomes) == ['refused'] * 5 + ['won']
    assert [o[1] for o in outcomes if o[0] == 'won'] == [str(stale)]
    assert not (work / LOCK_FILE).exists()


def listing(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob('*'))
    }


def test_train_refuses_a_locked_work_dir_before_writing(tmp_path, holder):
    """Two launches in one work dir: the second tools/train.py stops
    before it writes anything there (no log, no config copy), naming the
    first run. Before the lock it trained into the same files."""
    root = require_fashion_mnist()
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))
    proc = holder(work)
    before = listing(work)
    with pytest.raises(WorkDirLockedError) as info:
        run_tool(
            'train',
            CT_CONFIG,
            '--work-dir',
            work,
            '--cfg-options',
            'train_cfg.max_epochs=1',
            'train_dataloader.dataset.indices=32',
            'train_dataloader.batch_size=16',
            'val_cfg.bn_recal_images=0',
            'val_dataloader.dataset.indices=16',
            f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            f'experiment_name={tmp_path.name}_locked',
        )
    assert f'PID {proc.pid},' in str(info.value)
    assert 'command: train.py FIRST-RUN' in str(info.value)
    assert listing(work) == before


def test_upstream_train_script_is_refused_by_the_hook(tmp_path, holder):
    """An upstream tools/train.py (``Runner.from_cfg(cfg).train()``, no mmst
    launcher) with ``mmst.SafeCheckpointHook``: the hook takes the work
    dir's lock in ``before_run``, so a second run is refused before it
    trains (its Runner has written its log folder by then)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    root = require_fashion_mnist()
    work = tmp_path / 'work'
    work.mkdir()
    proc = holder(work)
    cfg = Config.fromfile(CT_CONFIG)
    cfg.merge_from_dict(
        {
            'work_dir': str(work),
            'train_cfg.max_epochs': 1,
            'train_dataloader.dataset.indices': 16,
            'train_dataloader.dataset.data_root': str(root),
            'val_cfg': None,
            'val_dataloader': None,
            'val_evaluator': None,
            'experiment_name': f'{tmp_path.name}_hook_locked',
        }
    )
    assert cfg.default_hooks.checkpoint.type == 'mmst.SafeCheckpointHook'
    runner = Runner.from_cfg(cfg)
    with pytest.raises(WorkDirLockedError) as info:
        runner.train()
    assert f'PID {proc.pid},' in str(info.value)
    assert not list(work.glob('*.pth'))
