"""``env_cfg.dist_cfg`` (mmst/apis/launch.py): bad values fail when the
config is prepared, naming key, value and what is allowed; the timeout
reaches the process group on CPU (before, the gloo group was started
without it and waited torch's default 30 minutes); a collective that
timed out or lost its peer becomes one line naming the rank and the
timeout. The 2-rank run with a stopped rank is test_rank_faults.py."""

import datetime
import os
import threading
import time
from unittest import mock

import pytest
import torch.distributed as dist
from mmengine.config import Config

from mmst.apis.launch import (
    RankFailureError,
    check_dist_cfg,
    dist_cfg_keys,
    explain_rank_failures,
    init_process_group,
    prepare_config,
    process_group_kwargs,
    rank_failure,
)

from .common import free_port

GLOO_TIMEOUT = (
    '[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/'
    'unbound_buffer.cc:78] Timed out waiting 5000ms for recv operation to '
    'complete'
)
GLOO_RESET = (
    '[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] '
    'Read error [127.0.0.1]:15263: Connection reset by peer. This is '
    'typically caused by a remote worker hanging or bugs in the application.'
)


def config(**dist_cfg) -> Config:
    return Config(
        dict(default_scope='mmpretrain', env_cfg=dict(dist_cfg=dist_cfg))
    )


@pytest.mark.parametrize(
    'dist_cfg,launcher,expected',
    [
        (
            dict(timeout=0),
            'pytorch',
            'env_cfg.dist_cfg.timeout=0 is not a time in seconds; '
            'allowed: a number > 0',
        ),
        (dict(timeout=-5), 'none', 'env_cfg.dist_cfg.timeout=-5 is not'),
        (dict(timeout='30'), 'pytorch', "env_cfg.dist_cfg.timeout='30' is"),
        (dict(timeout=True), 'pytorch', 'env_cfg.dist_cfg.timeout=True is'),
        (
            dict(timeout=float('inf')),
            'pytorch',
            'env_cfg.dist_cfg.timeout=inf is',
        ),
        (
            dict(backend='glo'),
            'pytorch',
            "env_cfg.dist_cfg.backend='glo' is not a torch.distributed "
            'backend; allowed: gloo | nccl',
        ),
        (dict(backend='cpu:glo,cuda:nccl'), 'pytorch', 'backend; allowed'),
        (
            dict(backend='mpi'),
            'pytorch',
            'this torch is built without MPI',
        ),
        (
            dict(timout=60),
            'pytorch',
            'env_cfg.dist_cfg.timout=60 is not a setting of the process '
            'group with --launcher pytorch; allowed keys: backend, '
            'init_backend, init_method, timeout',
        ),
        (
            dict(port=29500),
            'pytorch',
            'env_cfg.dist_cfg.port is for --launcher slurm',
        ),
        (
            dict(init_backend='deepspeed'),
            'pytorch',
            "env_cfg.dist_cfg.init_backend='deepspeed' needs GPUs",
        ),
        (
            dict(init_backend='horovod'),
            'none',
            "init_backend='horovod' is invalid; allowed: 'torch' | ",
        ),
    ],
)
def test_bad_dist_cfg_fails_when_prepared(dist_cfg, launcher, expected):
    if 'MPI' in expected and dist.is_mpi_available():
        pytest.skip('this torch has MPI')
    cfg = config(**dist_cfg)
    with pytest.raises(ValueError) as info:
        prepare_config(cfg, launcher)
    assert expected in str(info.value)
    assert not dist.is_initialized()  # refused before the process group


def test_good_dist_cfg_and_its_process_group_kwargs():
    cfg = config(backend='gloo', timeout=5, init_method='env://')
    assert check_dist_cfg(cfg, 'pytorch') == cfg.env_cfg.dist_cfg
    check_dist_cfg(config(backend='cpu:gloo,cuda:nccl', timeout=0.5))
    check_dist_cfg(config(timeout=None), 'pytorch')  # torch's default
    check_dist_cfg(config(port=29500), 'slurm')
    assert 'device_id' in dist_cfg_keys('pytorch')
    # as MMEngine's init_dist: seconds -> timedelta; its own keys left out
    kwargs = process_group_kwargs(
        dict(backend='gloo', timeout=5, init_backend='torch', port=1)
    )
    assert kwargs == dict(timeout=datetime.timedelta(seconds=5))
    assert cfg.env_cfg.dist_cfg.timeout == 5  # the config keeps seconds


def test_collective_failures_become_one_line():
    timed_out = rank_failure(RuntimeError(GLOO_TIMEOUT), 5)
    assert timed_out.startswith(
        'this rank: no answer from another rank within '
        'env_cfg.dist_cfg.timeout=5 s: a rank stopped (frozen, suspended, '
        'deadlocked, or working alone longer than the timeout), died or '
        'never started'
    )
    assert timed_out.endswith(f'torch.distributed said: {GLOO_TIMEOUT}')
    assert '\n' not in timed_out
    died = rank_failure(RuntimeError(GLOO_RESET), None)
    assert died.startswith(
        'this rank: another rank died (it closed its connection during a '
        "collective; env_cfg.dist_cfg.timeout unset (torch's default: 1800 s)"
        ' was not reached)'
    )
    # timeouts that are not collectives pass unchanged
    loader = RuntimeError('DataLoader timed out after 5 seconds')
    assert rank_failure(loader, 5) is None
    with pytest.raises(RuntimeError) as info:
        with explain_rank_failures(config(timeout=5)):
            raise loader
    assert info.value is loader
    with pytest.raises(RankFailureError) as info:
        with explain_rank_failures(config(timeout=5)):
            raise RuntimeError(GLOO_TIMEOUT)
    assert str(info.value) == timed_out
    assert str(info.value.__cause__) == GLOO_TIMEOUT


def test_cpu_process_group_gets_the_timeout():
    """Rank 0 of 2 alone: starting the gloo group waits for rank 1 for
    ``env_cfg.dist_cfg.timeout`` (1 s), not torch's 30 minutes, and the
    error names the rank and the timeout."""
    cfg = config(backend='gloo', timeout=1)
    env = dict(
        MASTER_ADDR='127.0.0.1',
        MASTER_PORT=str(free_port()),
        RANK='0',
        WORLD_SIZE='2',
        LOCAL_RANK='0',
    )
    result = {}

    def start():
        try:
            init_process_group(cfg, 'pytorch')
        except Exception as e:  # noqa: BLE001 - checked below
            result['error'] = e

    with mock.patch.dict(os.environ, env):
        begin = time.monotonic()
        thread = threading.Thread(target=start, daemon=True)
        thread.start()
        thread.join(timeout=20)
        took = time.monotonic() - begin
    assert not thread.is_alive(), 'the timeout was not applied'
    assert not dist.is_initialized()
    error = result.get('error')
    assert isinstance(error, RankFailureError), repr(error)
    assert str(error).startswith(
        'rank 0 of 2: no answer from another rank within '
        'env_cfg.dist_cfg.timeout=1 s'
    )
    assert took < 10, took
