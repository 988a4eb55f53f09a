"""ST++ on 2 CPU ranks equals single-process training on the global batch.

One torchrun job (``scripts/st_parity.py``) trains the same GroupNorm
ResNet with ST++ (N=3, LayerNorm KL, random smaller inputs, sub-networks
that skip blocks) in several data-parallel modes; rank 0 also trains an
unwrapped copy on the whole global batch (the reference). The parity
check: parameters identical on both ranks and within 1e-5 of the
reference. It passes with mmst's wrapper (also with gradient
accumulation) and with torch DDP when every pass goes through DDP's
forward; it fails when the gradients are not all-reduced (the wrapper's
sync skipped) or only the main pass is synchronised.
"""

from typing import Dict

import pytest
import torch

from .common import SCRIPTS, run, torchrun

MODES = ('mmst', 'mmst_accum2', 'nosync', 'torchddp', 'torchddp_main')
ATOL = 1e-5


@pytest.fixture(scope='module')
def results(tmp_path_factory) -> Dict[str, dict]:
    out = tmp_path_factory.mktemp('st_parity')
    cmd = torchrun(
        SCRIPTS / 'st_parity.py', [str(out), '--modes', ','.join(MODES)]
    )
    run(cmd, cwd=out, timeout=300)

    def load(name):
        return torch.load(out / f'{name}.pth', weights_only=False)

    res = {m: [load(f'{m}_rank{r}') for r in range(2)] for m in MODES}
    res['ref'] = {k: load(f'ref_accum{k}') for k in (1, 2)}
    return res


def parity_diffs(ranks, ref) -> Dict[str, float]:
    r0, r1 = (r['final'] for r in ranks)
    return dict(
        rank_diff=(r0 - r1).abs().max().item(),
        ref_diff=max((r - ref['final']).abs().max().item() for r in (r0, r1)),
    )


def assert_parity(ranks, ref) -> None:
    """Both ranks' parameters are identical and equal the single-process
    reference's (to ``ATOL``)."""
    diffs = parity_diffs(ranks, ref)
    assert diffs['rank_diff'] == 0, (
        'replicas differ across ranks: max |rank0 - rank1| = '
        f'{diffs["rank_diff"]:.3g}'
    )
    assert diffs['ref_diff'] <= ATOL, (
        'replicas differ from single-process training on the global batch: '
        f'max |rank - reference| = {diffs["ref_diff"]:.3g} > {ATOL}'
    )


@pytest.mark.slow
def test_passes_are_shared_and_skip_blocks(results):
    ref = results['ref'][1]
    stages = ref['stage_depths']
    for mode in MODES:
        for rank in results[mode]:
            assert rank['passes'] == ref['passes'], mode
    last = [passes[-1] for passes in ref['passes']]
    # the last pass of some iterations skips blocks: parameters unused in
    # the pass before the all-reduce (or in DDP's last reduction)
    assert any(p['depths'] != stages for p in last), last
    sizes = [p['size'] for passes in ref['passes'] for p in passes]
    assert min(sizes) < 28 and max(sizes) <= 28, sizes


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['mmst', 'mmst_accum2'])
def test_mmst_wrapper_matches_single_process(results, mode):
    ranks = results[mode]
    ref = results['ref'][ranks[0]['accum']]
    # ranks started from different weights; the wrapper broadcast rank 0's
    assert not torch.equal(ranks[0]['init'], ranks[1]['init'])
    for rank in ranks:
        assert torch.equal(rank['after_wrap'], ranks[0]['init'])
    assert torch.equal(ref['init'], ranks[0]['init'])
    assert_parity(ranks, ref)
    # training moved the weights, and the ranks saw different data
    assert (ranks[0]['final'] - ref['init']).abs().max() > 0.01
    assert ranks[0]['losses'] != ranks[1]['losses']


@pytest.mark.slow
def test_torch_ddp_every_pass_matches_single_process(results):
    """torch (2.14) DDP with find_unused_parameters=True is also exact when
    each pass is a forward of the DDP module; it all-reduces after each of
    the N + 1 backward passes (see benchmarks/ddp_cost.py)."""
    assert_parity(results['torchddp'], results['ref'][1])


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['nosync', 'torchddp_main'])
def test_parity_fails_without_gradient_sync(results, mode):
    """The parity check can fail: without the wrapper's all-reduce, or with
    DDP synchronising the main pass only, the replicas drift apart."""
    ranks = results[mode]
    with pytest.raises(AssertionError, match='differ across ranks') as err:
        assert_parity(ranks, results['ref'][1])
    diffs = parity_diffs(ranks, results['ref'][1])
    print(f'\n{mode}: {err.value}; {diffs}')
    assert diffs['rank_diff'] > 1e-3
    assert diffs['ref_diff'] > 1e-3
