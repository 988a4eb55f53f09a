"""BN re-estimation itself (mmst.engine.recalibrate_bn) and its loader
(mmst.engine.build_recal_loader): pooled statistics, one set for all ranks
(2 gloo processes against one process fed the same batches), refusals
that name the numbers, and a loader that repeats itself and leaves the
global random generators alone."""

import random
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch
from mmengine.dataset import DefaultSampler, pseudo_collate
from torch.utils.data import DataLoader

from mmst.engine import build_recal_loader, elastic_of, recalibrate_bn
from tests.test_core.common import (
    batch,
    build,
    make_folder_dataset,
    tiny_classifier_cfg,
)
from tests.tolerance import assert_far_below, assert_within, gamma

from .common import engine_cfg, st_model

SCRIPTS = Path(__file__).parent / 'scripts'
WORLD = 2
BATCHES = 3  # per rank
PER_BATCH = 4
SIZE = 16


def tiny_model() -> torch.nn.Module:
    """The core tests' ResNet (1 channel, 3 stages x 2 blocks, BN), the
    same weights in every process."""
    torch.manual_seed(0)
    return build(tiny_classifier_cfg())


def rank_batches(rank: int) -> List[List[dict]]:
    """``BATCHES`` batches of ``PER_BATCH`` samples of rank ``rank``."""
    out = []
    for j in range(BATCHES):
        b = batch(n=PER_BATCH, size=SIZE, seed=100 + 10 * j + rank)
        out.append(
            [
                dict(inputs=x, data_samples=s)
                for x, s in zip(b['inputs'], b['data_samples'])
            ]
        )
    return out


def loader(batches: List[List[dict]]) -> DataLoader:
    samples = [s for b in batches for s in b]
    return DataLoader(
        samples,
        batch_size=PER_BATCH,
        shuffle=False,
        collate_fn=pseudo_collate,
    )


def bn_stats(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {
        k: v.clone()
        for k, v in model.state_dict().items()
        if k.endswith(('running_mean', 'running_var', 'num_batches_tracked'))
    }


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the torchrun processes
    yield
    torch.set_num_threads(threads)


def test_pooled_mean_and_unbiased_variance(one_thread):
    """The statistics are those of all images together (not an average of
    per-batch statistics); momentum, num_batches_tracked and the layers a
    sub-network skips are left alone."""
    model = tiny_model()
    batches = rank_batches(0)
    before = bn_stats(model)
    bn = model.backbone.norm1
    momentum = bn.momentum
    elastic, space = elastic_of(model)
    with elastic.activate(space.smallest()):
        used = recalibrate_bn(model, loader(batches), 12)
    assert used == 12
    after = bn_stats(model)

    # the stem BN's input over the 3 batches, in float64
    with torch.no_grad():
        xs = []
        for b in batches:
            data = model.data_preprocessor(pseudo_collate(b), False)
            xs.append(model.backbone.conv1(data['inputs']).double())
        x = torch.cat(xs).transpose(0, 1).flatten(1)  # (C, N*H*W)
    # float32 sums of n terms per channel (the batch statistics, then
    # their pooling over the batches): each within gamma(n + 16) of the
    # sum of |terms| (|x| for the mean, x**2 for the variance, which
    # also covers a one-pass E[x^2] - E[x]^2); twice that between two
    # such computations (tests/tolerance.py)
    n = x.shape[1]
    tol_mean = 2 * gamma(n + 16) * x.abs().mean(1)
    tol_var = 2 * gamma(n + 16) * x.pow(2).sum(1) / (n - 1)
    assert_within(after['backbone.bn1.running_mean'], x.mean(1), tol_mean)
    assert_within(
        after['backbone.bn1.running_var'], x.var(1, unbiased=True), tol_var
    )
    # a real defect (the first batch's statistics only) is far above
    first = xs[0].transpose(0, 1).flatten(1)
    bug = float((first.mean(1) - x.mean(1)).abs().max())
    assert_far_below(float(tol_mean.max()), bug, factor=10)
    assert bn.momentum == momentum
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert not any(k.endswith('num_batches_tracked') for k in changed)
    # [1,1,1] runs the first block of every stage only
    assert 'backbone.layer1.0.bn1.running_var' in changed
    assert not any('.1.bn' in k for k in changed)


def test_refuses_more_images_than_available():
    model = tiny_model()
    before = bn_stats(model)
    with pytest.raises(
        ValueError,
        match=r'bn_recal_images=13 is more than the training images '
        r'available for BN re-estimation: 12 \(12 per rank x 1 rank\(s\), '
        r'3 batches of 4; the dataset has 12 images\); allowed: '
        r'bn_recal_images <= 12',
    ):
        recalibrate_bn(model, loader(rank_batches(0)), 13)
    for k, v in bn_stats(model).items():
        assert torch.equal(v, before[k]), k


@pytest.mark.multiprocess
def test_two_ranks_give_one_set_equal_to_one_process(
    dist_scenarios, one_thread
):
    """2 gloo ranks, each on its own batches, end with the same statistics:
    those one process computes from rank 0's batch 0, rank 1's batch 0,
    rank 0's batch 1, ...; ``bn_recal_images`` counts both ranks."""
    out = dist_scenarios['bn_recal']  # scripts/bn_recal_dist.py
    ranks = [
        torch.load(out / f'rank{r}.pth', weights_only=False)
        for r in range(WORLD)
    ]
    total = WORLD * BATCHES * PER_BATCH
    for res in ranks:
        assert res['used'] == total
        assert res['members_equal']  # member_bn_stats of 2 members
    for k, v in ranks[0]['stats'].items():
        assert torch.equal(v, ranks[1]['stats'][k]), k

    interleaved = [
        b
        for j in range(BATCHES)
        for b in (rank_batches(r)[j] for r in range(WORLD))
    ]
    single = tiny_model()
    assert recalibrate_bn(single, loader(interleaved), total) == total
    alone = tiny_model()
    recalibrate_bn(alone, loader(rank_batches(0)), BATCHES * PER_BATCH)
    reference, rank0 = bn_stats(single), bn_stats(alone)
    # the ranks' sums are added in another order than one process adds
    # them: each statistic within 2 * gamma(n + 16) of its magnitude, n
    # the values it pools (bounded here by every BN input's element
    # count); the input magnitudes are bounded by the statistics
    # themselves (mean^2 <= E[x^2] = var * (n-1)/n + mean^2)
    n = total * SIZE * SIZE
    for k, v in ranks[0]['stats'].items():
        if k.endswith('num_batches_tracked'):
            assert torch.equal(v, reference[k]), k
            continue
        mean = reference[k.replace('running_var', 'running_mean')]
        var = reference[k.replace('running_mean', 'running_var')]
        magnitude = var.double() + mean.double().pow(2)
        if k.endswith('running_mean'):
            magnitude = magnitude.sqrt()
        assert_within(v, reference[k], 2 * gamma(n + 16) * magnitude)
    assert any(
        not torch.allclose(v, rank0[k], rtol=1e-3, atol=1e-3)
        for k, v in ranks[0]['stats'].items()
    ), 'the 2-rank statistics equal rank 0 alone: not all-reduced'

    # refusals happen on every rank (none waits in a collective forever)
    for res in ranks:
        assert res['too_many'].startswith(
            f'bn_recal_images={total + 1} is more than the training images '
            f'available for BN re-estimation: {total} (12 per rank x 2 rank'
        )
        # rank 1's loader is a batch short: 2 x 8 images at most
        assert res['uneven'].startswith(
            f'bn_recal_images={total} is more than the training images '
            'available for BN re-estimation: 16 (8 per rank x 2 rank'
        )
        assert res['unchanged']


def test_recal_loader_repeats_and_leaves_rng_alone(tmp_path):
    """The loader built from a train_dataloader with an InfiniteSampler and
    a random flip: a seeded DefaultSampler, the same images and flips at
    every pass, and the global random generators as they were."""
    data_root = make_folder_dataset(tmp_path / 'data')
    cfg = engine_cfg(tmp_path / 'w', data_root, st_model(), iter_based=True)
    model = build(tiny_classifier_cfg(in_channels=3))
    recal = build_recal_loader(cfg.train_dataloader, seed=0)
    assert cfg.train_dataloader.sampler.type == 'InfiniteSampler'
    sampler = recal.dataloader.sampler
    assert isinstance(sampler, DefaultSampler) and sampler.shuffle
    assert len(recal) == 3 and recal.batch_size == 6

    def draws():
        return random.random(), np.random.rand(), torch.rand(1).item()

    def seed(s):
        random.seed(s)
        np.random.seed(s)
        torch.manual_seed(s)

    seed(123)
    expected = draws()
    seed(123)
    passes = [[d['inputs'] for d in recal] for _ in range(2)]
    stats = []
    for _ in range(2):
        recalibrate_bn(model, recal, 12)
        assert recal.last_count == 12
        stats.append(bn_stats(model))
    assert draws() == expected

    for a, b in zip(*passes):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    for k, v in stats[0].items():
        assert torch.equal(v, stats[1][k]), k
    other = [d['inputs'] for d in build_recal_loader(cfg.train_dataloader, 1)]
    assert any(
        not torch.equal(x, y)
        for a, b in zip(passes[0], other)
        for x, y in zip(a, b)
    )
