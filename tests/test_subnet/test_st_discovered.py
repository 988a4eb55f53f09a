"""ST++ on backbones whose stages mmst discovers (ConvNeXt, Swin): the
training step's gradients equal an independent computation that runs the
first k blocks of each stage by hand (as tests/test_core/test_st_step.py
does for ResNets)."""

import pytest
import torch

from tests.test_core.common import batch, build, tiny_classifier_cfg
from tests.test_core.test_st_step import step_matches_method

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
    log_vars, passes = step_matches_method(
        model, batch(n=4), spec['forward'], spec['full']
    )
    assert any(d != list(spec['full']) for d, _ in passes)
    assert torch.isfinite(torch.as_tensor(float(log_vars['loss'])))
