"""StimulativeTraining around its task: plain checkpoints down to the
module versions in ``_metadata``, and a pluggable sub-network loss."""

import copy
import io
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from mmengine.runner.checkpoint import load_state_dict
from torch.nn.modules.batchnorm import _BatchNorm

from mmst.registry import MODELS
from tests.test_core.common import batch, build, st_cfg


def _record_versions(model: nn.Module) -> dict:
    """prefix -> the ``local_metadata`` each BN layer is loaded with."""
    seen = {}
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            load = module._load_from_state_dict

            def spy(state_dict, prefix, local_metadata, *args, _load=load):
                seen[prefix] = dict(local_metadata)
                return _load(state_dict, prefix, local_metadata, *args)

            module._load_from_state_dict = spy
    return seen


def test_state_dict_metadata_is_the_architectures():
    torch.manual_seed(0)
    model = build(st_cfg())
    state = model.state_dict()
    plain = model.architecture.state_dict()
    assert list(state) == list(plain)
    assert dict(state._metadata) == dict(plain._metadata)
    assert not any('architecture' in k for k in state._metadata)

    # through a file, into a fresh ST model and a plain architecture, with
    # every module's version (BN: 2) reaching its loader
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert isinstance(loaded._metadata, OrderedDict)
    for target in (build(st_cfg()), copy.deepcopy(model.architecture)):
        seen = _record_versions(target)
        load_state_dict(target, copy.copy(loaded), strict=True)
        assert seen and all(m.get('version') == 2 for m in seen.values())
        got = target.state_dict()
        assert all(torch.equal(got[k], state[k]) for k in state)
    seen = _record_versions(model)
    model.load_state_dict(loaded, strict=True)  # torch's own loader
    assert seen and all(m.get('version') == 2 for m in seen.values())


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
