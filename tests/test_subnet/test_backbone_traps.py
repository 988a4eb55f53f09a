"""Backbone-specific traps of sub-networks (docs/backbones.md "Notes"):

- ``frozen_stages``, in whatever units a backbone counts it (ResNet,
  ConvNeXt and Swin stages, ViT encoder layers): frozen blocks are never
  skipped, also where the backbone freezes only in ``train()`` (Swin);
- ``out_indices`` into a stage a sub-network shortens, layer scale and
  relative position tables: a sub-network computes exactly what the same
  architecture built at the shorter depths computes with the same weights
  (its "twin");
- stochastic depth: each kept block keeps its own ``drop_path_rate``
  share, and the ST++ step with stochastic depth on is finite.
"""

import copy

import pytest
import torch
from mmcv.cnn.bricks import DropPath
from mmengine.optim import OptimWrapper

from tests.test_core.common import batch, build, tiny_classifier_cfg

WIDTH = 8


def convnext(depths=(2, 3), **kwargs) -> dict:
    return dict(
        type='ConvNeXt',
        arch=dict(depths=list(depths), channels=[WIDTH, 2 * WIDTH]),
        in_channels=1,
        stem_patch_size=2,
        **kwargs,
    )


def swin(depths=(2, 3), **kwargs) -> dict:
    return dict(
        dict(
            type='SwinTransformer',
            arch=dict(embed_dims=WIDTH, depths=list(depths), num_heads=[2, 2]),
            in_channels=1,
            img_size=28,
            patch_size=2,
            window_size=4,
            pad_small_map=True,
        ),
        **kwargs,
    )


def vit(num_layers=4, **kwargs) -> dict:
    return dict(
        dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=16,
                num_layers=num_layers,
                num_heads=2,
                feedforward_channels=32,
            ),
            img_size=28,
            patch_size=7,
            in_channels=1,
        ),
        **kwargs,
    )


def classifier(backbone: dict, in_channels: int) -> dict:
    arch = tiny_classifier_cfg()
    arch['backbone'] = backbone
    arch['head']['in_channels'] = in_channels
    if backbone['type'] in ('VisionTransformer', 'ConvNeXt'):
        arch.pop('neck')  # the class token; ConvNeXt pools itself
    return arch


def st(arch: dict, **kwargs):
    """An ``mmst.StimulativeTraining`` model around a copy of ``arch``."""
    return build(
        dict(
            type='mmst.StimulativeTraining',
            architecture=copy.deepcopy(arch),
            **kwargs,
        )
    )


def resnet20_frozen() -> dict:
    arch = tiny_classifier_cfg(depth=20)
    arch['backbone']['frozen_stages'] = 1
    return arch


# (architecture, frozen blocks per mmst stage, the space's depth choices)
FROZEN = {
    # ResNet: frozen_stages=1 freezes the stem and res_layers[0]
    'resnet': (resnet20_frozen(), [3, 0, 0], [[3], [1, 2, 3], [1, 2, 3]]),
    # ConvNeXt: frozen_stages=1 freezes downsample_layers[0] and stages[0]
    'convnext': (
        classifier(convnext(frozen_stages=1, out_indices=(1,)), 2 * WIDTH),
        [2, 0],
        [[2], [1, 2, 3]],
    ),
    # Swin: frozen_stages=0 freezes the patch embedding and stages[0],
    # only when train() runs (not at build)
    'swin': (
        dict(
            classifier(swin(frozen_stages=0, out_indices=(1,)), 2 * WIDTH),
            neck=dict(type='GlobalAveragePooling'),
        ),
        [2, 0],
        [[2], [1, 2, 3]],
    ),
    # ViT: frozen_stages=2 freezes encoder layers 0 and 1 of mmst's stage
    'vit': (classifier(vit(frozen_stages=2), 16), [2], [[2, 3, 4]]),
}


@pytest.mark.parametrize('name', sorted(FROZEN))
def test_frozen_blocks_are_never_skipped(name):
    arch, prefix, choices = FROZEN[name]
    torch.manual_seed(0)
    model = st(arch, num_subnets=2, seed=0)
    assert model.elastic.frozen_prefix() == prefix
    assert model.space.depth_choices == choices
    frozen = {
        n: p.detach().clone()
        for n, p in model.named_parameters()
        if not p.requires_grad
    }
    assert frozen
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log_vars = model.train_step(batch(n=4), optim)
    assert torch.isfinite(torch.as_tensor(float(log_vars['loss'])))
    params = dict(model.named_parameters())
    assert all(torch.equal(params[n], v) for n, v in frozen.items())

    # an explicit space that would skip a frozen block is refused
    stage = prefix.index(max(prefix))
    depths = [list(c) for c in choices]
    depths[stage] = [1, prefix[stage]]
    with pytest.raises(ValueError, match=rf'space\.depths\[{stage}\].*frozen'):
        st(arch, num_subnets=2, space=dict(depths=depths))


def test_stochastic_sampling_inside_a_frozen_prefix_is_refused():
    arch = FROZEN['vit'][0]
    with pytest.raises(ValueError, match=r"mode='stochastic'.*frozen"):
        st(arch, num_subnets=2, space=dict(mode='stochastic'))


def _backbone(cfg: dict):
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import mmst  # noqa: F401

    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(cfg)


# backbone config at given depths, the full depths, a shorter sub-network;
# pairs (sub-network output index, twin output index or None: equals the
# full network's output, the same prefix)
TWINS = {
    # out_indices=(0, 1): stage 0's output, which the sub-network
    # shortens; layer scale in every block
    'convnext': (
        lambda d: convnext(d, out_indices=(0, 1), gap_before_final_norm=False),
        (2, 3),
        (1, 2),
        [(0, 0), (1, 1)],
    ),
    # relative position tables and shifted windows per block
    'swin': (
        lambda d: swin(d, out_indices=(0, 1)),
        (2, 3),
        (1, 2),
        [(0, 0), (1, 1)],
    ),
    # out_indices=[1, 3]: layer 1 (kept: as in the full network) and the
    # last layer (skipped: the final norm applies to layer 1's output, as
    # in a 2-layer ViT)
    'vit': (
        lambda d: vit(d[0], out_indices=[1, 3] if d[0] == 4 else [1]),
        (4,),
        (2,),
        [(0, None), (1, 0)],
    ),
}


@pytest.mark.parametrize('name', sorted(TWINS))
def test_subnet_equals_its_shallower_twin(name):
    from mmst.subnet import ElasticDepth, SubnetSpace

    make, full, depths, pairs = TWINS[name]
    torch.manual_seed(0)
    net = _backbone(make(full))
    twin = _backbone(make(depths))
    missing, _ = twin.load_state_dict(net.state_dict(), strict=False)
    assert not missing  # the twin's keys are a subset of the network's
    net.eval()
    twin.eval()
    elastic = ElasticDepth(net)
    subnet = SubnetSpace(elastic.stage_depths).subnet_from_depths(depths)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        with elastic.activate(subnet):
            outs = net(x)
        expected = twin(x)
        whole = net(x)
    assert [o.shape for o in outs] == [o.shape for o in whole]
    for i, j in pairs:
        want = whole[i] if j is None else expected[j]
        assert torch.equal(outs[i], want), (i, j)


@pytest.mark.parametrize('name', ['convnext', 'swin'])
def test_stochastic_depth_rates_stay_per_block(name):
    """The backbone spreads ``drop_path_rate`` over all its blocks when it
    is built; a sub-network's kept blocks keep their own share (the
    sub-network is the same modules, not a rebuilt network)."""
    rate = 0.3
    backbone = (convnext if name == 'convnext' else swin)(
        drop_path_rate=rate, out_indices=(1,)
    )
    arch = classifier(backbone, 2 * WIDTH)
    if name == 'swin':
        arch['neck'] = dict(type='GlobalAveragePooling')
    torch.manual_seed(0)
    model = st(
        arch,
        num_subnets=2,
        logit_norm='layernorm',
        input_resize=dict(ratio_range=(0.6, 1.0)),
        seed=0,
    )
    blocks = [b for stage in model.elastic.stages for b in stage]
    expected = torch.linspace(0, rate, len(blocks)).tolist()
    for block, want in zip(blocks, expected):
        probs = {
            m.drop_prob for m in block.modules() if isinstance(m, DropPath)
        }
        if want == 0:  # the first block: no DropPath or a rate of 0
            assert probs <= {0.0}
        else:
            assert [pytest.approx(want)] == sorted(probs)
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log_vars = model.train_step(batch(n=4), optim)
    assert torch.isfinite(torch.as_tensor(float(log_vars['loss'])))


def test_smaller_inputs_are_checked_at_build_and_named_at_run():
    """``input_resize`` is checked with dry forwards when the model is
    built (BEiT-style fixed tables fail there: tests/test_subnet/
    test_backbone_matrix.py); inputs smaller than the dry sizes can still
    fail in training, and the error then says which resize it was."""
    arch = classifier(convnext(out_indices=(1,)), 2 * WIDTH)
    with pytest.raises(ValueError, match=r'input_resize=.*size_range'):
        st(arch, num_subnets=1, input_resize=dict(size_range=(1, 1)))
    model = st(
        arch, num_subnets=1, input_resize=dict(ratio_range=(0.05, 0.05))
    )
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    with pytest.raises(RuntimeError) as error:
        model.train_step(batch(n=2), optim)  # 28 px -> 1 px
    notes = getattr(error.value, '__notes__', [])
    assert any('input_resize' in n and '1 px' in n for n in notes), notes


def test_smaller_inputs_of_a_fixed_input_size_are_checked_at_build():
    """A pose model's crops have one size (the codec's ``input_size``):
    the smallest padded input a sub-network gets from it is checked when
    the model is built. SCNet runs on square inputs of 96 px (what the
    square dry forwards try) but not on 128 x 96, the smallest padded
    input of 256 x 192 crops at ratio 0.43; it used to fail in the first
    training step."""
    pytest.importorskip('mmpose')
    from mmengine.registry import DefaultScope
    from mmpose.utils import register_all_modules

    from mmst.registry import MODELS

    register_all_modules(init_default_scope=False)
    architecture = dict(
        type='TopdownPoseEstimator',
        data_preprocessor=dict(
            type='PoseDataPreprocessor', mean=[0, 0, 0], std=[1, 1, 1]
        ),
        backbone=dict(
            type='SCNet', depth=50, stem_channels=8, base_channels=8
        ),
        head=dict(
            type='HeatmapHead',
            in_channels=256,
            out_channels=3,
            deconv_out_channels=None,
            decoder=dict(
                type='MSRAHeatmap',
                input_size=(192, 256),
                heatmap_size=(6, 8),
                sigma=2,
            ),
        ),
    )
    cfg = dict(type='mmst.StimulativeTraining', architecture=architecture)
    with DefaultScope.overwrite_default_scope('mmpose'):
        with pytest.raises(ValueError) as error:
            MODELS.build(dict(cfg, input_resize=dict(ratio_range=(0.43, 1))))
        # from 0.6 on, the smallest input (160 x 128 padded) runs
        MODELS.build(dict(cfg, input_resize=dict(ratio_range=(0.6, 1))))
    message = str(error.value)
    assert message.startswith('input_resize=')
    assert "the model's inputs are 256x192" in message
    assert 'SCNet does not run on 128x96' in message
