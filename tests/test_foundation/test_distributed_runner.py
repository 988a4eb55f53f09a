"""MMEngine's Runner trains with DistributedDataParallel on 2 CPU ranks.

The script (``scripts/ddp_train.py``) starts the gloo process group itself
before building the Runner (MMEngine's ``init_dist`` calls
``torch.cuda.set_device``) and wraps the model with ``device_ids=None``.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).parent / 'scripts' / 'ddp_train.py'
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.mark.multiprocess
def test_two_rank_ddp_training(tmp_path):
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS='1',
        GLOO_SOCKET_IFNAME=env.get('GLOO_SOCKET_IFNAME', 'lo'),
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO), env.get('PYTHONPATH')) if p
        ),
    )
    cmd = [
        sys.executable,
        '-m',
        'torch.distributed.run',
        '--nnodes=1',
        '--nproc_per_node=2',
        '--master_addr=127.0.0.1',
        f'--master_port={_free_port()}',
        str(SCRIPT),
        str(tmp_path),
    ]
    proc = subprocess.run(
        cmd,
        env=env,
        cwd=str(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f'torchrun failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n'
        f'{proc.stderr[-8000:]}'
    )

    results = [
        torch.load(tmp_path / f'rank{rank}.pth', weights_only=True)
        for rank in range(2)
    ]
    for rank, res in enumerate(results):
        assert res['rank'] == rank
        assert res['local_rank'] == rank
        assert res['world_size'] == 2
        assert res['backend'] == 'gloo'
        assert res['device_ids'] is None
        assert res['iters'] == 8

    r0, r1 = results
    # the ranks started from different weights; DDP broadcast rank 0's
    assert not torch.equal(r0['init'], r1['init'])
    torch.testing.assert_close(r0['after_wrap'], r0['init'], rtol=0, atol=0)
    torch.testing.assert_close(r1['after_wrap'], r0['init'], rtol=0, atol=0)
    # each rank saw different samples, yet the all-reduced gradients kept
    # the replicas identical, and training changed them
    torch.testing.assert_close(r0['final'], r1['final'], rtol=0, atol=0)
    assert not torch.allclose(r0['final'], r0['after_wrap'])
    assert torch.isfinite(r0['final']).all()
