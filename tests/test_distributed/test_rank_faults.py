"""One rank in trouble under torchrun (2 CPU ranks, gloo): a locked work
dir stops every rank, and a stopped rank (SIGSTOP) makes rank 0 fail with
one clear error within ``env_cfg.dist_cfg.timeout``
(scripts/rank_faults.py); before, gloo ignored the timeout and rank 0
waited 30 minutes."""

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mmst.engine import work_dir_lock

from .common import (
    REPO,
    SCRIPTS,
    cpu_env,
    require_fashion_mnist,
    torchrun,
)

CT_CONFIG = REPO / 'configs/mmpretrain/fashion_mnist/resnet20_ct_fmnist.py'
#: env_cfg.dist_cfg.timeout of the run, seconds: above the ranks' startup
#: skew (they import and build in parallel), small for the test's time
TIMEOUT = 6
#: rank 0 may wait in a collective up to an iteration before rank 1 stops,
#: and needs a moment to print after the timeout
EARLY, LATE = 2.0, 5.0
FAILURE = (
    'rank 0 of 2: no answer from another rank within '
    f'env_cfg.dist_cfg.timeout={TIMEOUT} s: a rank stopped'
)


class Lines:
    """A process's output lines, each with the time it was read."""

    def __init__(self, stream):
        self.lines = []
        self.thread = threading.Thread(target=self._read, args=(stream,))
        self.thread.daemon = True
        self.thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append((time.time(), line))

    def first(self, text):
        return next((t for t, line in self.lines if text in line), None)

    @property
    def text(self):
        return ''.join(line for _, line in self.lines)


def started_with(arg: str) -> list:
    """PIDs of the processes whose command line holds ``arg`` (a path of
    this test's own temporary folder: processes this test started)."""
    pids = []
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / 'cmdline').read_bytes().split(b'\0')
            except OSError:
                continue
            if arg.encode() in cmdline:
                pids.append(int(entry.name))
    return pids


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.multiprocess
def test_locked_work_dir_and_stopped_rank_under_torchrun(tmp_path):
    root = require_fashion_mnist()
    stop_file = tmp_path / 'stopped.json'
    config = tmp_path / 'freeze_rank1.py'
    config.write_text(
        f'_base_ = [{str(CT_CONFIG)!r}]\n'
        'custom_hooks = [dict(type="FreezeRankHook", rank=1, iteration=1, '
        f'stop_file={str(stop_file)!r})]\n'
        f'env_cfg = dict(dist_cfg=dict(backend="gloo", timeout={TIMEOUT}))\n'
    )
    locked, work = tmp_path / 'locked', tmp_path / 'work'
    args = [
        '--launcher',
        'pytorch',
        '--no-validate',
        '--cfg-options',
        'train_cfg.max_epochs=1',
        'train_dataloader.dataset.indices=64',
        'train_dataloader.batch_size=16',
        'default_hooks.logger.interval=1',
        f'train_dataloader.dataset.data_root={root}',
    ]
    cmd = torchrun(
        SCRIPTS / 'rank_faults.py', [str(config), str(locked), str(work)]
    )
    with work_dir_lock.acquire(locked, command='pytest FIRST-RUN'):
        proc = subprocess.Popen(
            cmd + args,
            cwd=tmp_path,
            env=cpu_env(dict(PYTHONUNBUFFERED='1')),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        out = Lines(proc.stdout)
        stopped = None
        try:
            deadline = time.time() + 120  # startup: imports, Runner
            while time.time() < deadline and proc.poll() is None:
                if stop_file.is_file():
                    stopped = json.loads(stop_file.read_text())
                    break
                time.sleep(0.1)
            assert stopped, f'rank 1 did not stop:\n{out.text[-4000:]}'
            deadline = stopped['time'] + TIMEOUT + LATE
            while time.time() < deadline and out.first(FAILURE) is None:
                time.sleep(0.1)
            failed = out.first(FAILURE)
        finally:
            if stopped:
                kill(stopped['pid'])  # torchrun's SIGTERM cannot stop it
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            for pid in started_with(str(config)):  # leftovers, if any
                kill(pid)
            out.thread.join(timeout=5)
        # nothing written in the locked work dir, the lock left alone
        assert sorted(p.name for p in locked.iterdir()) == ['mmst_run.lock']
    log = out.text
    # 1. the locked work dir: both ranks refused, naming the holder
    for rank in (0, 1):
        refused = re.search(f'rank {rank} refused: (.*)', log)
        assert refused, log[-4000:]
        assert f'PID {os.getpid()},' in refused.group(1)
        assert 'command: pytest FIRST-RUN' in refused.group(1)
    assert 'told by rank 0' in re.search('rank 1 refused: (.*)', log)[0]

    # 2. the stopped rank: rank 0 fails within the timeout, one line
    assert failed is not None, (
        f'rank 0 did not fail within {TIMEOUT} s + {LATE} s of rank 1 '
        f'stopping:\n{log[-4000:]}'
    )
    waited = failed - stopped['time']
    assert TIMEOUT - EARLY <= waited <= TIMEOUT + LATE, waited
    assert f'RankFailureError: {FAILURE}' in log
    assert proc.returncode != 0
    # the run's log file says why it ended; the lock was released
    logs = list(work.glob('*/*.log'))
    assert len(logs) == 1 and FAILURE in logs[0].read_text(), logs
    assert not (work / 'mmst_run.lock').exists()
    assert not started_with(str(config))
