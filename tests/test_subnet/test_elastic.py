import copy

import pytest
import torch
from mmengine.registry import init_default_scope

from mmst.models.backbones import keep_first_blocks
from mmst.subnet import ElasticDepth, SubnetSpace, find_stages


def _build(registry, cfg):
    model = registry.build(cfg)
    model.eval()  # some backbones' train() does not return self
    return model


def _libs():
    """(scope, backbone cfg) of the ResNet family in the four libraries."""
    cases = []
    for scope, types in [
        ('mmpretrain', ['ResNet', 'ResNetV1c', 'ResNetV1d', 'ResNeXt']),
        ('mmdet', ['ResNet', 'ResNetV1d', 'ResNeXt']),
        ('mmseg', ['ResNetV1c']),
        ('mmpose', ['ResNet']),
    ]:
        for t in types:
            cfg = dict(type=t, depth=50, out_indices=(3,))
            if t == 'ResNeXt':
                cfg.update(
                    groups=4, base_width=4
                ) if scope == 'mmdet' else cfg.update(
                    groups=4, width_per_group=4
                )
            cases.append((scope, cfg))
    return cases


def _registry(scope):
    import importlib

    return importlib.import_module(f'{scope}.registry').MODELS


@pytest.mark.parametrize(
    'scope, cfg', _libs(), ids=lambda v: v if isinstance(v, str) else v['type']
)
def test_resnet_family_equals_hand_built_shallower_net(scope, cfg):
    init_default_scope(scope)
    torch.manual_seed(0)
    full = _build(_registry(scope), cfg)
    elastic = ElasticDepth(full)
    assert elastic.stage_depths == [3, 4, 6, 3]
    keys = list(full.state_dict())
    subnet = SubnetSpace([3, 4, 6, 3]).subnet_from_depths([1, 2, 5, 2])
    shallow = copy.deepcopy(full)
    keep_first_blocks(shallow, [1, 2, 5, 2])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        with elastic.activate(subnet):
            got = full(x)[-1]
        want = shallow(x)[-1]
        again = full(x)[-1]
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert not torch.allclose(again, got)  # restored to the full network
    assert list(full.state_dict()) == keys


def test_skipped_blocks_are_not_computed():
    init_default_scope('mmpretrain')
    net = _build(
        _registry('mmpretrain'),
        dict(type='ResNet', depth=18, out_indices=(3,)),
    )
    elastic = ElasticDepth(net)
    calls = []
    for stage in elastic.stages:
        for block in stage:
            block.conv1.register_forward_hook(lambda m, i, o: calls.append(m))
    with torch.no_grad(), elastic.activate(((0,), (0,), (0,), (0,))):
        net(torch.randn(1, 3, 32, 32))
    assert len(calls) == 4


def test_mobilenet_v3_and_vit():
    init_default_scope('mmpretrain')
    reg = _registry('mmpretrain')
    mb = _build(reg, dict(type='MobileNetV3', arch='small'))
    stages = find_stages(mb)
    assert stages and all(len(s) > 1 for s in stages)
    assert all(b.with_res_shortcut for s in stages for b in s[1:])
    elastic = ElasticDepth(mb)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        full = mb(x)[-1]
        with elastic.activate(SubnetSpace(elastic.stage_depths).smallest()):
            small = mb(x)[-1]
    assert small.shape == full.shape and not torch.equal(small, full)

    vit = _build(
        reg,
        dict(
            type='VisionTransformer',
            arch='deit-tiny',
            img_size=32,
            patch_size=16,
        ),
    )
    elastic = ElasticDepth(vit)
    assert elastic.stage_depths == [12]
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad(), elastic.activate(((0, 1, 2),)):
        three = vit(x)[-1]
    # The same as a 3-layer ViT with the same weights and final norm: the
    # same operations on the same tensors, so the same bits
    short = copy.deepcopy(vit)
    short.layers = short.layers[:3]
    short.out_indices = [2]
    with torch.no_grad():
        assert torch.equal(three, short(x)[-1])


def test_unknown_backbone_error_says_how_to_declare():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(TypeError, match='elastic_stages='):
        ElasticDepth(net)


def test_declared_stages():
    from collections import OrderedDict

    blocks = torch.nn.Sequential(
        OrderedDict(
            stage=torch.nn.Sequential(*[torch.nn.Identity() for _ in range(3)])
        )
    )
    assert ElasticDepth(blocks, ['stage']).stage_depths == [3]
    with pytest.raises(ValueError, match='not a sub-module'):
        ElasticDepth(blocks, ['nothing'])
