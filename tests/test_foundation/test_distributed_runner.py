"""MMEngine's Runner trains with DistributedDataParallel on 2 CPU ranks.

The script (``scripts/ddp_train.py``) starts the gloo process group itself
before building the Runner (MMEngine's ``init_dist`` calls
``torch.cuda.set_device``) and wraps the model with ``device_ids=None``.
"""

import pytest
import torch


@pytest.mark.multiprocess
def test_two_rank_ddp_training(dist_scenarios):
    """scripts/ddp_train.py on 2 gloo ranks (one torchrun launch with the
    other scenarios: tests/conftest.py ``dist_scenarios``)."""
    out = dist_scenarios['ddp_train']
    results = [
        torch.load(out / f'rank{rank}.pth', weights_only=True)
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
