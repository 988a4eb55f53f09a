"""ST++ on backbones whose stages mmst discovers (ConvNeXt, Swin): the
training step's gradients equal an independent computation that runs the
first k blocks of each stage by hand (as tests/test_core/test_st_step.py
does for ResNets)."""

import copy

import pytest
import torch

from tests.test_core.common import (
    RecordingOptimWrapper,
    batch,
    build,
    tiny_classifier_cfg,
)
from tests.test_core.test_st_step import reference_gradients
from tests.tolerance import assert_far_below, assert_within, max_abs, sum_bound

WIDTH = 8


def convnext_forward(arch, x, depths):
    """Downsampling layer, the first k blocks of each stage, the final
    norm after global pooling, the head's linear layer."""
    bb = arch.backbone
    for i, k in enumerate(depths):
        x = bb.downsample_layers[i](x)
        for block in list(bb.stages[i])[:k]:
            x = block(x)
    norm = getattr(bb, f'norm{len(depths) - 1}')
    return arch.head.fc(norm(x.mean([-2, -1], keepdim=True)).flatten(1))


def swin_forward(arch, x, depths):
    """Patch embedding, the first k blocks of each stage and its patch
    merging, the final norm, the neck's global pooling, the head's linear
    layer."""
    bb = arch.backbone
    x, hw = bb.patch_embed(x)
    for i, k in enumerate(depths):
        stage = bb.stages[i]
        for block in list(stage.blocks)[:k]:
            x = block(x, hw)
        if i == len(depths) - 1:
            break
        x, hw = stage.downsample(x, hw)
    i = len(depths) - 1
    out = getattr(bb, f'norm{i}')(x)
    out = out.view(-1, *hw, bb.num_features[i]).permute(0, 3, 1, 2)
    return arch.head.fc(arch.neck((out.contiguous(),))[-1])


ARCHS = {
    'ConvNeXt': dict(
        backbone=dict(
            type='ConvNeXt',
            arch=dict(depths=[2, 3], channels=[WIDTH, 2 * WIDTH]),
            in_channels=1,
            out_indices=(1,),
            stem_patch_size=2,
        ),
        neck=None,
        forward=convnext_forward,
        full=(2, 3),
    ),
    'SwinTransformer': dict(
        backbone=dict(
            type='SwinTransformer',
            arch=dict(embed_dims=WIDTH, depths=[2, 3], num_heads=[2, 2]),
            in_channels=1,
            img_size=28,
            patch_size=2,
            window_size=4,
            out_indices=(1,),
            drop_path_rate=0.0,  # stochastic depth: random in training
            pad_small_map=True,
        ),
        neck=dict(type='GlobalAveragePooling'),
        forward=swin_forward,
        full=(2, 3),
    ),
}


@pytest.mark.parametrize('name', sorted(ARCHS))
def test_stpp_step_matches_method(name):
    spec = ARCHS[name]
    arch = tiny_classifier_cfg()
    arch['backbone'] = spec['backbone']
    if spec['neck'] is None:
        arch.pop('neck')
    arch['head']['in_channels'] = 2 * WIDTH
    torch.manual_seed(0)
    model = build(
        dict(
            type='mmst.StimulativeTraining',
            architecture=arch,
            num_subnets=3,
            logit_norm='layernorm',
            input_resize=dict(ratio_range=(0.6, 1.0)),
            seed=3,
        )
    )
    model.train()
    assert model.elastic.stage_depths == list(spec['full'])
    data = batch(n=4)
    reference = copy.deepcopy(model.architecture)
    optim = RecordingOptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    passes = []
    for i in range(1, 4):
        subnet, size = model.sample(i, 28)
        passes.append(([len(s) for s in subnet], size))
    assert any(d != list(spec['full']) for d, _ in passes)
    log_vars = model.train_step(data, optim)
    assert torch.isfinite(torch.as_tensor(float(log_vars['loss'])))

    pre = reference.data_preprocessor(data, True)
    labels = torch.stack([s.gt_label for s in pre['data_samples']]).view(-1)
    expected, per_pass = reference_gradients(
        reference, pre['inputs'], labels, passes, spec['forward'], spec['full']
    )
    tols = []
    for p, q in zip(model.architecture.parameters(), reference.parameters()):
        terms = [g[id(q)] for g in per_pass if g[id(q)] is not None]
        if not terms:
            continue
        tol = 2 * sum_bound(len(terms), sum(g.double().abs() for g in terms))
        assert_within(optim.recorded[id(p)], expected[id(q)], tol)
        tols.append(float(tol.max()))
    last = [g for g in per_pass[-1].values() if g is not None]
    assert_far_below(max(tols), max_abs(*last))
