"""Nothing lost under faults: kill -9 during training, during a checkpoint
write and during ``last_checkpoint``'s update, and a write failure of a
full disk; each followed by ``tools/train.py --resume``, which finishes
with the uninterrupted run's final weights, bit for bit (the shipped
Fashion-MNIST ST++ config, mmst.SafeCheckpointHook).

Each run is ``tools/train.py``'s ``main()`` in a process forked from this
one (the libraries are imported already), killed with SIGKILL at the
fault: a real kill, real files."""

import multiprocessing
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch

from mmst.utils import register_all_modules
from tests.test_distributed.common import (
    REPO,
    require_fashion_mnist,
    run_tool,
)

# mmst's modules registered once here; the forked runs inherit them
register_all_modules(init_default_scope=False)

CONFIG = REPO / 'configs/mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py'
EPOCHS = 2
IMPORTS = ['mmst', 'tests.test_engine.fault_points']
# 2 iterations of 32 images per epoch, random crop and flip, 3 sub-networks
# at random smaller sizes, validation with BN re-estimation every epoch
OPTIONS = (
    f'train_cfg.max_epochs={EPOCHS}',
    'train_dataloader.dataset.indices=64',
    'train_dataloader.batch_size=32',
    'val_dataloader.dataset.indices=32',
    'val_cfg.bn_recal_images=32',
    'default_hooks.checkpoint.max_keep_ckpts=1',
)
FAULTS = {
    # SIGKILL after the first iteration of epoch 2
    'training': dict(hook=dict(type='FreezeAtIter', iter=3), ends='killed'),
    # SIGKILL halfway through writing epoch_2.pth (max_keep_ckpts=1: the
    # old code had removed epoch_1.pth already)
    'checkpoint write': dict(write=('epoch_2.pth', 1), ends='killed'),
    # SIGKILL halfway through the 2nd update of last_checkpoint
    'last_checkpoint update': dict(
        write=('last_checkpoint', 2), ends='killed'
    ),
    # epoch_2.pth cannot be written: no file may exceed 100 kB from epoch 2
    'disk full': dict(
        hook=dict(type='FileSizeLimitFromEpoch', epoch=2, limit=100_000),
        ends='failed',
    ),
}


def _child(config, work_dir, log, options, write, sentinel) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = sys.stderr = os.fdopen(fd, 'w', buffering=1)
    try:
        if write is not None:
            from tests.test_engine.fault_points import slow_write

            slow_write(*write, sentinel)
        root = require_fashion_mnist()
        run_tool(
            'train',
            config,
            '--work-dir',
            work_dir,
            *options,
            '--cfg-options',
            *OPTIONS,
            f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
        )
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    os._exit(0)


def train(work_dir: Path, *options: str, fault=None) -> str:
    """Run tools/train.py on CONFIG (plus the fault's hook) in a forked
    process; SIGKILL it once it reaches the fault. Returns ``'done'``,
    ``'killed'`` or ``'failed'`` (a non-zero exit)."""
    fault = fault or {}
    log = work_dir.parent / f'{work_dir.name}.log'
    sentinel = work_dir.parent / f'{work_dir.name}.at_fault'
    hooks = (
        [dict(fault['hook'], sentinel=str(sentinel))]
        if 'hook' in fault
        else []
    )
    config = work_dir.parent / 'st.py'
    config.write_text(
        f'_base_ = [{str(CONFIG)!r}]\n'
        f'custom_imports = dict(imports={IMPORTS!r})\n'
        f'custom_hooks = {hooks!r}\n'
    )
    ctx = multiprocessing.get_context('fork')
    proc = ctx.Process(
        target=_child,
        args=(
            str(config),
            str(work_dir),
            str(log),
            options,
            fault.get('write'),
            str(sentinel),
        ),
    )
    proc.start()
    deadline = time.monotonic() + 300
    while proc.is_alive() and time.monotonic() < deadline:
        if sentinel.exists():
            os.kill(proc.pid, signal.SIGKILL)
            proc.join()
            sentinel.unlink()
            return 'killed'
        time.sleep(0.02)
    proc.join(timeout=1)
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
        pytest.fail(f'{work_dir.name}: no fault within 300 s')
    return 'done' if proc.exitcode == 0 else 'failed'


def log_of(work_dir: Path) -> str:
    return (work_dir.parent / f'{work_dir.name}.log').read_text()


def log_tail(work_dir: Path) -> str:
    return log_of(work_dir)[-3000:]


def final_weights(work_dir: Path) -> dict:
    ckpt = torch.load(work_dir / f'epoch_{EPOCHS}.pth', weights_only=True)
    return ckpt['state_dict']


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory) -> dict:
    work_dir = tmp_path_factory.mktemp('faults') / 'uninterrupted'
    assert train(work_dir) == 'done', log_tail(work_dir)
    return final_weights(work_dir)


@pytest.mark.parametrize('fault', list(FAULTS))
def test_resume_after_fault_equals_uninterrupted_run(
    fault, uninterrupted, tmp_path
):
    work_dir = tmp_path / 'run'
    assert train(work_dir, fault=FAULTS[fault]) == FAULTS[fault]['ends'], (
        log_tail(work_dir)
    )
    # the fault happened in epoch 2, after epoch_1.pth was complete
    assert (work_dir / 'epoch_1.pth').exists()
    if fault == 'disk full':
        assert 'File too large' in log_tail(work_dir)
    if fault == 'training':
        # also what a kill during MMEngine's in-place rewrite of
        # last_checkpoint left: an empty file next to intact checkpoints
        (work_dir / 'last_checkpoint').write_text('')
    assert train(work_dir, '--resume') == 'done', log_tail(work_dir)
    if fault == 'training':  # --resume says what it skipped
        assert 'last_checkpoint is empty' in log_of(work_dir)
    resumed = final_weights(work_dir)
    differ = [
        k
        for k in uninterrupted
        if not torch.equal(uninterrupted[k], resumed[k])
    ]
    assert not differ, f'{len(differ)} of {len(resumed)} tensors differ'
    assert not [p for p in os.listdir(work_dir) if p.endswith('.tmp')]
