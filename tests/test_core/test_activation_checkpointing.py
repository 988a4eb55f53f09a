"""With ``bn_stats='main'`` a sub-network pass never changes BN running
statistics, also when activation checkpointing (``with_cp=True``) runs the
blocks' forward again during the backward."""

import torch
from mmengine.optim import OptimWrapper

from .common import batch, build, st_cfg


def bn_state(model) -> dict:
    return {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))
    }


def one_step(num_subnets: int, with_cp: bool) -> dict:
    torch.manual_seed(0)
    model = build(
        st_cfg(
            num_subnets=num_subnets,
            seed=0,
            arch=dict(depth=14),
            input_resize=dict(ratio_range=(0.5, 1.0)),
        )
    )
    model.architecture.backbone.with_cp = with_cp
    for block in model.architecture.backbone.modules():
        if hasattr(block, 'with_cp'):
            block.with_cp = with_cp
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.0))
    model.train_step(batch(n=4), optim)
    return bn_state(model)


def test_subnet_passes_leave_bn_statistics_alone_with_checkpointing():
    main_only = one_step(0, with_cp=True)
    with_subnets = one_step(3, with_cp=True)
    assert main_only.keys() == with_subnets.keys() and main_only
    for key, value in main_only.items():
        torch.testing.assert_close(
            with_subnets[key], value, rtol=0, atol=0, msg=key
        )


def test_checkpointing_is_active_in_the_test():
    """The test above exercises recomputation: upstream, checkpointing
    runs BN twice per training forward (num_batches_tracked 2, not 1)."""
    plain = one_step(0, with_cp=False)
    checkpointed = one_step(0, with_cp=True)
    key = 'backbone.layer1.0.bn1.num_batches_tracked'
    assert int(plain[key]) == 1
    assert int(checkpointed[key]) == 2
