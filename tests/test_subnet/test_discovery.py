"""Stage discovery and checks for backbones mmst has no rule for
(mmst.subnet.discovery): found from the module tree, checked by one dry
forward; declarations checked the same way, with errors naming the
block."""

import pytest
import torch
import torch.nn as nn

from mmst.subnet import ElasticDepth, SubnetSpace
from mmst.subnet.discovery import StageCheckError, discover_stages


def _backbone(cfg: dict) -> nn.Module:
    import mmpretrain.models  # noqa: F401 (registers the backbones)
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    torch.manual_seed(0)
    # an earlier test may have left another library's default scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        net = MODELS.build(cfg)
    net.eval()  # some backbones' train() does not return self
    return net


def record_computed(elastic) -> set:
    """The blocks of ``elastic`` whose layers run from now on (a hook on
    each block's first layer with parameters: a skipped block's own hooks
    still fire)."""
    computed = set()
    for stage in elastic.stages:
        for block in stage:
            inner = next(
                m
                for m in block.modules()
                if m is not block
                and any(True for _ in m.parameters(recurse=False))
            )
            inner.register_forward_pre_hook(
                lambda m, a, block=block: computed.add(block)
            )
    return computed


# tiny archs: (cfg, stage paths, depths)
FOUND = {
    'ConvNeXt': (
        dict(
            type='ConvNeXt',
            arch=dict(depths=[2, 3], channels=[8, 16]),
            out_indices=(1,),
        ),
        ['stages.0', 'stages.1'],
        [2, 3],
    ),
    'SwinTransformer': (
        dict(
            type='SwinTransformer',
            arch=dict(embed_dims=16, depths=[2, 3], num_heads=[2, 2]),
            img_size=64,
            window_size=4,
            out_indices=(1,),
        ),
        ['stages.0.blocks', 'stages.1.blocks'],
        [2, 3],
    ),
    'PoolFormer': (
        dict(
            type='PoolFormer',
            arch=dict(
                layers=[2, 1, 1, 3],
                embed_dims=[8, 8, 16, 16],
                mlp_ratios=[2, 2, 2, 2],
                layer_scale_init_value=1e-5,
            ),
        ),
        ['network.0', 'network.4'],  # equal widths: no downsampling
        [2, 3],
    ),
    'EfficientNet': (
        dict(type='EfficientNet', arch='b0'),
        ['layers.2', 'layers.3', 'layers.4', 'layers.4', 'layers.5'],
        [2, 2, 3, 3, 4],
    ),
}


@pytest.mark.parametrize('name', sorted(FOUND))
def test_discovered_stages_skip_blocks_and_keep_shapes(name):
    cfg, paths, depths = FOUND[name]
    net = _backbone(cfg)
    found = discover_stages(net)
    assert [p for p, _ in found] == paths
    elastic = ElasticDepth(net)
    assert elastic.stage_depths == depths
    keys = set(net.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        full = net(x)
    smallest = SubnetSpace(depths).smallest()
    calls = record_computed(elastic)
    with torch.no_grad(), elastic.activate(smallest):
        small = net(x)
    kept = {
        stage[k] for idx, stage in zip(smallest, elastic.stages) for k in idx
    }
    assert len(kept) < sum(depths)
    assert calls == kept  # skipped blocks are not computed
    for a, b in zip(full, small):
        assert a.shape == b.shape and not torch.equal(a, b)
    assert set(net.state_dict()) == keys


@pytest.mark.parametrize(
    'cfg',
    [
        dict(type='VGG', depth=11, out_indices=(4,)),
        dict(type='DenseNet', arch='121'),
        dict(type='RepVGG', arch='A0'),
        dict(type='RepVGG', arch='A0', deploy=True),
    ],
    ids=['VGG', 'DenseNet', 'RepVGG', 'RepVGG-deploy'],
)
def test_no_residual_stages_found(cfg):
    net = _backbone(cfg)
    assert discover_stages(net) == []
    with pytest.raises(TypeError, match='elastic_stages='):
        ElasticDepth(net)


class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


class _Net(nn.Module):
    def __init__(self, *blocks) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 1)
        self.stage = nn.Sequential(*blocks)
        self.spare = nn.Sequential(_Residual(4), _Residual(4))  # unused

    def forward(self, x):
        return self.stage(self.stem(x))


_net = _Net


def test_declaration_is_checked():
    good = _net(nn.Conv2d(4, 4, 1), _Residual(4), _Residual(4))
    assert ElasticDepth(good, ['stage']).stage_depths == [3]

    plain = _net(nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, padding=1))
    with pytest.raises(
        StageCheckError,
        match=r"block 'stage.1' \(Conv2d\) "
        'is not residual',
    ):
        ElasticDepth(plain, ['stage'])
    # on purpose: allowed, and skipping it then computes less
    on_purpose = dict(stages=['stage'], allow_non_residual=True)
    assert ElasticDepth(plain, on_purpose).stage_depths == [2]

    widening = _net(_Residual(4), nn.Conv2d(4, 8, 1))
    with pytest.raises(
        StageCheckError,
        match=r"'stage.1' .*changes the "
        r'shape \(1, 4, 64, 64\) -> \(1, 8, 64, 64\)',
    ):
        ElasticDepth(widening, ['stage'])

    with pytest.raises(StageCheckError, match="'spare.0' does not run"):
        ElasticDepth(good, ['spare'])

    with pytest.raises(
        ValueError,
        match='allowed: a list of stages, or '
        r'dict\(stages=\[...\], allow_non_residual=bool\)',
    ):
        ElasticDepth(good, dict(stage=['stage']))
