"""Paths beside the tested distributed default: ``diff_rank_seed=True``
and an interrupted run resumed (a plain model in a config that sets mmst's
wrapper: the matrix's ``mmpretrain-plain`` torchrun cell)."""

import json

import pytest
import torch


def load_sequence(out) -> list:
    return [
        {int(k): v for k, v in ranks.items()}
        for ranks in json.loads(out.read_text())
    ]


@pytest.mark.multiprocess
def test_diff_rank_seed_keeps_one_subnet_sequence_and_resumes(dist_scenarios):
    """With ``randomness.diff_rank_seed=True`` (runner seed = seed + rank)
    every rank still samples the same sub-networks and sizes at every
    iteration, and a run resumed from a checkpoint (a second Runner in
    the same processes) continues the same sequence
    (scripts/subnet_sequence.py in tests/conftest.py ``dist_scenarios``)."""
    tmp_path = dist_scenarios['sequence']
    full = load_sequence(tmp_path / 'full.json')
    rank0, rank1 = full
    assert sorted(rank0) == [0, 1, 2, 3]
    assert rank0 == rank1
    # the sequence is not degenerate: passes differ within the run
    passes = [(tuple(p[0]), p[1]) for v in rank0.values() for p in v]
    assert len(set(passes)) > 1, passes

    resumed = load_sequence(tmp_path / 'resumed.json')
    assert resumed[0] == resumed[1]
    assert sorted(resumed[0]) == [2, 3]
    assert resumed[0] == {i: rank0[i] for i in (2, 3)}


@pytest.mark.multiprocess
def test_resume_is_exact_with_two_ranks(dist_scenarios):
    """tools/train.py --launcher pytorch, 2 ranks with their own seeds
    (``diff_rank_seed``): a run interrupted after epoch 1 and resumed ends
    with the uninterrupted run's weights, bit for bit (each rank's random
    state is saved in the checkpoint and restored;
    tests/conftest.py ``exact_resume_runs``)."""
    import mmst  # noqa: F401  (reads MMEngine checkpoints weights-only)

    folder = dist_scenarios['resume']
    ckpts = [
        torch.load(folder / run / 'epoch_2.pth', weights_only=True)
        for run in ('full', 'resumed')
    ]
    full, resumed = (c['state_dict'] for c in ckpts)
    assert len(ckpts[1]['rng_states']) == 2
    assert not torch.equal(
        ckpts[1]['rng_states'][0]['torch'], ckpts[1]['rng_states'][1]['torch']
    )
    differ = [k for k in full if not torch.equal(full[k], resumed[k])]
    assert not differ, f'{len(differ)} of {len(full)} tensors differ'
