"""STDistributedDataParallel in one process (a gloo group of world size 1):
CPU SyncBatchNorm is refused with a clear message, and a wrapped step
equals the unwrapped one."""

import copy

import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper

from mmst.models.wrappers import STDistributedDataParallel
from tests.test_core.common import batch, build, st_cfg

from .common import free_port


@pytest.fixture
def gloo_world_of_one():
    if dist.is_initialized():
        pytest.fail('a process group is already initialised in this process')
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{free_port()}',
        rank=0,
        world_size=1,
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_needs_a_process_group():
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match='initialised torch.distributed'):
        STDistributedDataParallel(build(st_cfg(arch=dict(norm='GN'))))


@pytest.mark.parametrize('how', ['config', 'convert'])
def test_cpu_sync_bn_is_refused(gloo_world_of_one, how):
    if how == 'config':  # norm_cfg=dict(type='SyncBN')
        model = build(st_cfg(arch=dict(norm='SyncBN')))
    else:  # what the Runner does for sync_bn='torch'
        model = nn.SyncBatchNorm.convert_sync_batchnorm(build(st_cfg()))
    assert any(isinstance(m, nn.SyncBatchNorm) for m in model.modules())
    with pytest.raises(RuntimeError) as err:
        STDistributedDataParallel(model)
    message = str(err.value)
    assert 'SyncBatchNorm (architecture.backbone.' in message
    assert 'runs only on GPUs' in message
    # both forms, not only MMEngine's sync_bn (an mmseg config has none)
    assert "norm_cfg=dict(type='SyncBN') (mmseg: backbone, " in message
    assert "sync_bn='torch'" in message


def test_world_of_one_step_equals_unwrapped(gloo_world_of_one):
    torch.manual_seed(0)
    model = build(
        st_cfg(
            arch=dict(norm='GN'),
            num_subnets=2,
            input_resize=dict(ratio_range=(0.5, 1.0)),
            seed=3,
        )
    ).train()
    plain = copy.deepcopy(model)
    init = [p.detach().clone() for p in model.parameters()]
    wrapped = STDistributedDataParallel(model)
    optims = [
        OptimWrapper(torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9))
        for m in (model, plain)
    ]
    hub = MessageHub.get_current_instance()
    for i in range(2):
        hub.update_info('iter', i)
        data = batch(n=4, seed=i)
        wrapped.train_step(data, optims[0])
        plain.train_step(data, optims[1])
    # Exact: in a world of one the wrapper's all-reduce returns the summed
    # buffer unchanged and divides by 1, so both models run the same float
    # operations in the same order on the same shapes.
    for p, q in zip(model.parameters(), plain.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), init))
