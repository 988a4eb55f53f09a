"""Fault injection for training runs: hooks that stop, freeze or limit a
run at a chosen point, and a slowed file write, for tests/test_engine/
test_faults.py and the 2-process resume scenario (tests/conftest.py).

Imported through ``custom_imports`` (``tests.test_engine.fault_points``),
which registers the hooks in MMEngine's root registry."""

import builtins
import os
import os.path as osp
import resource
import signal
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _touch(path: str) -> None:
    with open(path, 'w') as f:
        f.write(str(os.getpid()))


@HOOKS.register_module()
class StopAfterEpoch(Hook):
    """Stop training after ``epoch``'s checkpoint and validation, as an
    interruption there would (the run's config, scheduler included, is the
    uninterrupted run's)."""

    priority = 'LOWEST'  # after the checkpoint hook (VERY_LOW)

    def __init__(self, epoch: int, sentinel=None) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            runner.train_loop.stop_training = True


@HOOKS.register_module()
class FreezeAtIter(Hook):
    """Touch ``sentinel`` after training iteration ``iter`` (1-based) and
    sleep until killed."""

    def __init__(self, iter: int, sentinel: str) -> None:
        self.iter, self.sentinel = iter, sentinel

    def after_train_iter(
        self, runner, batch_idx, data_batch=None, outputs=None
    ):
        if runner.iter + 1 == self.iter:
            _touch(self.sentinel)
            time.sleep(600)


@HOOKS.register_module()
class FileSizeLimitFromEpoch(Hook):
    """From ``epoch`` (1-based) on, no file may grow beyond ``limit`` bytes
    (``RLIMIT_FSIZE``: the kernel fails the write with ``EFBIG``, as a full
    disk fails it with ``ENOSPC``)."""

    priority = 'HIGHEST'

    def __init__(self, epoch: int, limit: int, sentinel=None) -> None:
        self.epoch, self.limit = epoch, limit

    def before_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, hard))


class _SlowFile:
    """A file whose first ``write`` writes half its data, touches
    ``sentinel`` and sleeps until killed."""

    def __init__(self, f, sentinel: str) -> None:
        self._f, self._sentinel = f, sentinel

    def write(self, data):
        self._f.write(data[: len(data) // 2])
        self._f.flush()
        _touch(self._sentinel)
        time.sleep(600)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def slow_write(name: str, occurrence: int, sentinel: str) -> None:
    """Make the ``occurrence``-th (1-based) opening for writing of a file
    called ``name`` in this process (or of a hidden temporary file for it,
    ``.NAME.*``) write half, touch ``sentinel`` and hang: the window of a
    kill during that write, made real."""
    real_open = builtins.open
    seen = [0]

    def open_(file, mode='r', *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        base = (
            osp.basename(os.fspath(file))
            if isinstance(file, (str, os.PathLike))
            else ''
        )
        if ('w' in mode) and (base == name or base.startswith(f'.{name}.')):
            seen[0] += 1
            if seen[0] == occurrence:
                return _SlowFile(f, sentinel)
        return f

    builtins.open = open_
