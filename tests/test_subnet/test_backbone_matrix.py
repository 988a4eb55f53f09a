"""Every backbone docs/backbones.md calls automatic (its default arch, or
the arguments the table names), trained and evaluated as mmst trains and
evaluates: its smallest sub-network does not compute the skipped blocks
(hooks count calls) and keeps the output shapes and state-dict keys; one
ST++ step (sub-networks on random smaller
inputs, KL- to the main logits) is finite with finite gradients (where the
table says the backbone refuses smaller inputs, building with
``input_resize`` is the error it promises, and the step runs without), and the
evaluation path shared by ``SubnetValLoop``, the loafing tool and the depth
menu (BN re-estimation, then evaluation, of several members) gives each
member, run together with shared prefixes, exactly what it gets alone.

The tools' own plumbing (configs, checkpoints, runners) does not depend on
the backbone; it runs end to end for ConvNeXt and Swin configs in
tests/test_analysis/test_discovered_tools.py."""

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.optim import OptimWrapper

from tests.test_analysis.test_prefix_sharing import _Scores
from tests.test_subnet.test_coverage import _automatic
from tests.test_subnet.test_discovery import record_computed

CLASSES = 3

#: Backbone settings for a plain linear head (DeiT's default output is a
#: (class token, distillation token) pair, for DeiT's own head).
HEAD_INPUT = {'DistilledVisionTransformer': dict(out_type='avg_featmap')}

#: The backbones that run only at their ImageNet size (224 px) or are
#: wide, shrunk to the smallest setting that keeps their structure (the
#: same block classes, stages and residual wiring; fewer pixels, fewer
#: channels or blocks): the step and evaluation paths are the same code
#: at any size, and these took 5-14 s each at the default size (the
#: coverage table, tests/test_subnet/test_coverage.py, still classifies
#: the default size).
TINY = {
    'BEiTViT': dict(arch='small', img_size=64),
    'DeiT3': dict(arch='small', img_size=64),
    'DistilledVisionTransformer': dict(arch='deit-small', img_size=64),
    'MixMIMTransformer': dict(img_size=64, window_size=[4, 4, 4, 2]),
    'MlpMixer': dict(arch='small', img_size=64),
    'RepMLPNet': dict(img_size=64),
    'RevVisionTransformer': dict(arch='small', img_size=64),
    'TNT': dict(arch='small', img_size=64),
    'ViTSAM': dict(img_size=64, window_size=4),
    'VisionTransformer': dict(arch='small', img_size=64),
    'XCiT': dict(img_size=64, embed_dims=192, depth=4),
}


def _forward(net, channels, smaller: bool = False):
    """The output at the smallest of 64 / 224 / 256 pixels ``net`` runs
    on, and that size; with ``smaller``, a size at which it also runs on
    the smallest inputs ST++'s default ``input_resize`` gives (that size
    and the next, as the coverage table's check,
    :func:`mmst.subnet.discovery.smaller_input_failure`)."""
    from mmst.subnet import InputSizeSampler

    smallest = InputSizeSampler().smallest
    errors = []
    for size in (64, 224, 256):
        sizes = [size]
        if smaller:
            sizes += [smallest(size), smallest(size) + 1]
        try:
            with torch.no_grad():
                outs = [net(torch.randn(1, channels, s, s)) for s in sizes]
            return outs[0], size
        except Exception as e:  # noqa: BLE001 (the next size)
            errors.append(e)
    raise AssertionError(errors)


def _flat(out) -> list:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return []


def _table_row(name: str) -> dict:
    """The coverage table's row of ``name``: column header -> cell."""
    from tests.test_subnet.test_coverage import _table

    header = None
    for line in _table().splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if cells[0] == 'backbone':
            header = cells
        elif cells[0] == name:
            return dict(zip(header, cells))
    raise AssertionError(f'{name} is not in the coverage table')


def _classifier_cfg(name: str) -> tuple:
    """An ``ImageClassifier`` config around backbone ``name`` (its default
    arch), the channels and the smallest of 64 / 224 / 256 pixels it runs
    at. The head reads the backbone's last output: global pooling first
    for a feature map (B, C, H, W) or a token sequence (B, C, N), none for
    a feature vector (B, C)."""
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from mmst.subnet.discovery import input_channels
    from mmst.testing.coverage import BUILD_ARGS, SMALLER_INPUT_SETTINGS

    backbone = dict(
        type=name, **BUILD_ARGS.get(name, {}), **HEAD_INPUT.get(name, {})
    )
    backbone.update(TINY.get(name, {}))
    smaller = _table_row(name)['smaller inputs']
    if smaller.startswith('with '):
        backbone.update(SMALLER_INPUT_SETTINGS[name])
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        net = MODELS.build(backbone)
    net.eval()
    channels = input_channels(net)
    out, size = _forward(net, channels, not smaller.startswith('no'))
    last = _flat(out)[-1]
    assert last.dim() in (2, 3, 4), (name, last.shape)
    neck = None
    if last.dim() > 2:
        neck = dict(type='GlobalAveragePooling', dim=last.dim() - 2)
    cfg = dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            num_classes=CLASSES,
            mean=[127.5] * channels,
            std=[64.0] * channels,
        ),
        backbone=backbone,
        neck=neck,
        head=dict(
            type='LinearClsHead',
            num_classes=CLASSES,
            in_channels=last.shape[1],
            loss=dict(type='CrossEntropyLoss'),
        ),
    )
    return cfg, channels, size


def _batch(channels: int, size: int, n: int, seed: int) -> dict:
    from mmpretrain.structures import DataSample

    g = torch.Generator().manual_seed(seed)
    inputs = [
        torch.randint(0, 256, (channels, size, size), generator=g).to(
            torch.uint8
        )
        for _ in range(n)
    ]
    labels = torch.randint(CLASSES, (n,), generator=g)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('name', _automatic())
def test_stpp_step_and_member_evaluation(name):
    from mmengine.logging import MessageHub
    from mmengine.registry import DefaultScope

    import mmst  # noqa: F401
    from mmst.analysis.menu import CachedBatches
    from mmst.engine import evaluate_members, evaluate_subnet, member_bn_stats
    from mmst.engine.bn_recal import _active_bns
    from mmst.registry import MODELS
    from mmst.subnet import SubnetSpace

    arch, channels, size = _classifier_cfg(name)
    cfg = dict(
        type='mmst.StimulativeTraining',
        architecture=arch,
        num_subnets=1,
        logit_norm='layernorm',
        input_resize=dict(ratio_range=(0.43, 1.0)),  # ST++'s
        seed=0,
    )
    smaller = _table_row(name)['smaller inputs']
    assert smaller == 'yes' or smaller.startswith(('with ', 'no (runs on'))
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        if smaller.startswith('no'):
            with pytest.raises(ValueError, match=r'input_resize=.*not on'):
                MODELS.build(cfg)
            cfg['input_resize'] = None
        torch.manual_seed(0)
        model = MODELS.build(cfg)

    # the smallest sub-network: skipped blocks are not computed, the
    # backbone's output shapes and the state-dict keys are unchanged
    net, elastic = model.architecture.backbone, model.elastic
    keys = set(model.state_dict())
    smallest = SubnetSpace(elastic.stage_depths).smallest()
    model.eval()
    x = torch.randn(1, channels, size, size)
    with torch.no_grad():
        full = net(x)
        calls = record_computed(elastic)
        with elastic.activate(smallest):
            small = net(x)
    kept = {
        stage[k] for idx, stage in zip(smallest, elastic.stages) for k in idx
    }
    assert calls == kept
    assert [t.shape for t in _flat(small)] == [t.shape for t in _flat(full)]
    calls.clear()

    # one ST++ step: the main pass and a sampled sub-network. Outside a
    # runner the step reads the iteration of the latest MessageHub: a hub
    # of its own, so that an earlier test's Runner (a module-scoped
    # fixture's, in the same worker) does not choose the sub-network
    MessageHub.get_instance(f'backbone_matrix_{name}')
    model.train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log_vars = model.train_step(_batch(channels, size, 2, seed=1), optim)
    assert torch.isfinite(torch.as_tensor(float(log_vars['loss']))), log_vars
    assert all(torch.isfinite(p).all() for p in model.parameters()), (
        'a parameter is not finite after the step'
    )

    assert set(model.state_dict()) == keys

    # members run together with shared prefixes == each run alone
    model.eval()
    arch_model = model.architecture
    space = SubnetSpace(elastic.stage_depths)
    # the smallest, a middle and the full network (HRNet's space has
    # more members than can be listed)
    choices = space.depth_choices
    subs = [
        space.subnet_from_depths([c[pick(c)] for c in choices])
        for pick in (lambda c: 0, lambda c: len(c) // 2, lambda c: -1)
    ]
    data = CachedBatches([_batch(channels, size, 2, seed=2)], [0, 1], 2)
    recal = CachedBatches([_batch(channels, size, 2, seed=3)], [0, 1], 2)
    images = 2 if _active_bns(arch_model) else 0
    stats = None
    if images:
        stats, used = member_bn_stats(arch_model, recal, images, subs, elastic)
        assert used == images
    shared = evaluate_members(
        arch_model,
        elastic,
        subs,
        data,
        [Evaluator(_Scores()) for _ in subs],
        stats,
    )
    for sub, metrics in zip(subs, shared):
        alone = evaluate_subnet(
            arch_model, sub, elastic, data, Evaluator(_Scores()), recal, images
        )
        assert torch.isfinite(metrics['scores/all']).all(), sub
        assert torch.equal(alone['scores/all'], metrics['scores/all']), sub
