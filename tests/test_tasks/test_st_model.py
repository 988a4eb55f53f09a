"""StimulativeTraining around its task: a pluggable sub-network loss."""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.optim import OptimWrapper

from mmst.registry import MODELS
from tests.test_core.common import batch, build, st_cfg


@MODELS.register_module(force=True)
class _MSEToTeacher(nn.Module):
    """A distillation loss of another kind: MSE of the logits."""

    def forward(self, student, teacher):
        return F.mse_loss(student, teacher)


def test_distill_builds_any_registered_loss():
    torch.manual_seed(0)
    model = build(
        st_cfg(
            num_subnets=1,
            logit_norm='layernorm',
            input_resize=dict(ratio_range=(0.5, 0.9)),
            distill=dict(type='mmst._MSEToTeacher'),
            seed=0,
        )
    )
    assert isinstance(model.distill, _MSEToTeacher)
    default = build(st_cfg(distill=dict(temperature=2.0)))
    assert type(default.distill).__name__ == 'KLDivergenceLoss'
    assert default.distill.temperature == 2.0

    model.train()
    data = batch(n=4)
    subnet, size = model.sample(1, 28)
    reference = copy.deepcopy(model)
    with torch.no_grad():
        pre = reference.data_preprocessor(data, True)
        arch, task = reference.architecture, reference.task
        _, teacher = task.main_pass(arch, pre['inputs'], pre['data_samples'])
        small = F.interpolate(
            pre['inputs'], size=(size, size), mode='bilinear'
        )
        with reference.as_subnet(subnet):
            student = task.normalize(task.raw_logits(arch, small))
    want = float(F.mse_loss(student, teacher))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log = model.train_step(data, optim)
    # the same operations on the same values: exactly
    assert log['loss_subnet'] == want
