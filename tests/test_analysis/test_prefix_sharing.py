"""Shared-prefix passes (mmst.subnet.prefix, used by
mmst.engine.member_bn_stats and evaluate_members) give every member
exactly what mmst.engine gives it alone: the same re-estimated BN
statistics (bit for bit) and the same predicted scores, for a ResNet, a
MobileNetV3 (layers between its stages) and a ViT (no BN); and the shared
blocks are computed once per batch."""

import copy

import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator

from mmst.analysis.menu import CachedBatches
from mmst.engine import evaluate_members, member_bn_stats
from mmst.subnet.prefix import block_keys, prefix_order
from tests.test_analysis.test_export import ARCHS as EXPORT_ARCHS
from tests.test_analysis.test_export import CLASSES, HEAD
from tests.test_analysis.test_export import _model as st_model

# test_export's MobileNetV3 and ViT, and a narrow ResNet-20 (3 x 3 blocks)
ARCHS = {
    'resnet20': dict(
        backbone=dict(
            type='mmst.ElasticResNet_CIFAR',
            depth=20,
            stem_channels=8,
            base_channels=8,
            num_stages=3,
            strides=(1, 2, 2),
            dilations=(1, 1, 1),
            out_indices=(2,),
        ),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(HEAD, in_channels=32),
        size=16,
    ),
    'mobilenet_v3': dict(EXPORT_ARCHS['mobilenet_v3'], size=32),
    'vit': dict(EXPORT_ARCHS['vit'], size=16),
}


class _Scores(BaseMetric):
    """Keeps every predicted score vector, in order."""

    default_prefix = 'scores'

    def process(self, data_batch, data_samples) -> None:
        self.results.extend(s['pred_score'].clone() for s in data_samples)

    def compute_metrics(self, results: list) -> dict:
        return dict(all=torch.stack(results))


def _model(arch: dict):
    import mmpretrain  # noqa: F401 (registers the models)
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    import mmst  # noqa: F401

    torch.manual_seed(0)
    # an earlier test may have left another library's default scope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(st_model(arch)['architecture'])
    model.init_weights()
    return model


def _batches(size: int, count: int, batch: int, seed: int) -> CachedBatches:
    from mmpretrain.structures import DataSample

    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        inputs = [
            torch.randint(0, 256, (3, size, size), generator=g).to(torch.uint8)
            for _ in range(batch)
        ]
        samples = [
            DataSample().set_gt_label(
                int(torch.randint(CLASSES, (1,), generator=g))
            )
            for _ in range(batch)
        ]
        batches.append(dict(inputs=inputs, data_samples=samples))
    return CachedBatches(batches, list(range(count * batch)), batch)


def _evaluator() -> Evaluator:
    return Evaluator(_Scores())


def test_block_keys_and_prefix_order():
    keys = block_keys(((0, 1), (0,), (0, 1, 2)))
    assert keys[(0, 1)] == ((), (0, 1))
    assert keys[(2, 0)] == (((0, 1), (0,)), (0,))
    assert keys[(2, 2)] == (((0, 1), (0,)), (0, 1, 2))
    # a block's key ignores later blocks of its stage and later stages
    assert block_keys(((0, 1, 2), (0, 1)))[(0, 1)] == keys[(0, 1)]
    subs = [((0, 1), (0,)), ((0,), (0, 1)), ((0,), (0,)), ((0, 1), (0, 1))]
    assert [subs[i] for i in prefix_order(subs)] == sorted(subs)


@pytest.mark.parametrize('name', sorted(ARCHS))
def test_members_equal_their_separate_runs(name):
    from mmst.engine import evaluate_subnet, preserved_bn_stats, recalibrate_bn
    from mmst.engine.bn_recal import _active_bns
    from mmst.subnet import ElasticDepth, SubnetSpace

    arch = ARCHS[name]
    model = _model(arch)
    elastic = ElasticDepth(model.backbone)
    space = SubnetSpace(elastic.stage_depths)
    subs = list(space.members())
    if len(subs) > 12:  # MobileNetV3: 36 members; a spread of 12
        subs = subs[:: len(subs) // 12][:12]
    # all members run shared; every third is also run alone
    data = _batches(arch['size'], count=3, batch=4, seed=1)
    recal = _batches(arch['size'], count=2, batch=6, seed=2)
    images = 12 if _active_bns(model) else 0
    before = copy.deepcopy(model.state_dict())
    stored = {bn: bn.running_mean.clone() for bn in _active_bns(model)}

    stats = None
    if images:
        stats, used = member_bn_stats(model, recal, images, subs, elastic)
        assert used == images
        for sub, member in list(zip(subs, stats))[::3]:
            with preserved_bn_stats(model), elastic.activate(sub):
                recalibrate_bn(model, recal, images)
                for bn, mean in stored.items():
                    if bn in member:  # reached: the same statistics
                        assert torch.equal(bn.running_mean, member[bn][0])
                        assert torch.equal(bn.running_var, member[bn][1])
                    else:  # not reached: left alone by both
                        assert torch.equal(bn.running_mean, mean)
            assert 0 < len(member) <= len(stored)
    shared = evaluate_members(
        model, elastic, subs, data, [_evaluator() for _ in subs], stats
    )
    for sub, metrics in list(zip(subs, shared))[::3]:
        alone = evaluate_subnet(
            model, sub, elastic, data, _evaluator(), recal, images
        )
        assert torch.equal(alone['scores/all'], metrics['scores/all']), sub
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_shared_blocks_run_once_per_batch():
    from mmst.subnet import ElasticDepth, SubnetSpace

    arch = ARCHS['resnet20']
    model = _model(arch)
    elastic = ElasticDepth(model.backbone)
    subs = list(SubnetSpace(elastic.stage_depths).members())
    assert len(subs) == 27
    calls = {}
    for i, stage in enumerate(elastic.stages):
        for j, block in enumerate(stage):
            block.conv1.register_forward_hook(
                lambda *a, key=(i, j): calls.__setitem__(
                    key, calls.get(key, 0) + 1
                )
            )
    data = _batches(arch['size'], count=2, batch=4, seed=1)
    evaluate_members(model, elastic, subs, data, [_evaluator() for _ in subs])
    # per batch: stage 1 once, stage 2 once per stage-1 depth (3), stage 3
    # once per (stage-1, stage-2) depths (9); block j only where kept
    assert calls[(0, 0)] == 2 * 1 and calls[(0, 2)] == 2 * 1
    assert calls[(1, 0)] == 2 * 3 and calls[(1, 1)] == 2 * 3
    assert calls[(2, 0)] == 2 * 9 and calls[(2, 2)] == 2 * 9
    assert sum(calls.values()) == 2 * (3 + 9 + 27)  # not 2 * 162
