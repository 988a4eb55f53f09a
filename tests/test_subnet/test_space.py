import random

import pytest

from mmst.subnet import SubnetSpace, format_subnet

R50 = [3, 4, 6, 3]

# docs/method.md's table: allowed depths per stage of ResNet-50.
EXPECTED = {
    'default': [[1, 2, 3], [1, 2, 3, 4], [1, 2, 3, 4, 5, 6], [1, 2, 3]],
    'space1': [[2, 3], [2, 3, 4], [2, 3, 4, 5, 6], [2, 3]],
    'space2': [[2, 3], [2, 3, 4], [1, 2, 3, 4, 5, 6], [1, 2, 3]],
    'space3': [[3], [3, 4], [3, 4, 5, 6], [3]],
    'space4': [[3], [3, 4], [2, 3, 4, 5, 6], [2, 3]],
    'space5': [[3], [4], [4, 5, 6], [3]],
    'space6': [[3], [3, 4], [3, 4, 5, 6], [2, 3]],
    'space7': [[3], [2, 3, 4], [2, 3, 4, 5, 6], [3]],
}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_presets(name):
    space = SubnetSpace(R50, name)
    assert space.depth_choices == EXPECTED[name]
    members = space.members()
    assert len(members) == len(space) == len(set(members))
    assert members[0] == space.smallest()
    assert members[-1] == space.largest()


def test_space3_has_eight_members_one_is_full():
    space = SubnetSpace(R50, 'space3')
    assert len(space) == 8
    assert space.full() in space.members()
    assert format_subnet(space.smallest()) == '[3,3,3,3]'


def test_default_for_any_depth_and_explicit_lists():
    assert SubnetSpace([5, 5, 5]).depth_choices == [[1, 2, 3, 4, 5]] * 3
    space = SubnetSpace([2, 2], [[2, 1], [2]])
    assert space.depth_choices == [[1, 2], [2]]
    assert space.members() == [((0,), (0, 1)), ((0, 1), (0, 1))]


def test_sampling_is_uniform_and_seeded():
    space = SubnetSpace(R50, 'space3')
    a = [space.sample(SubnetSpace.rng_for(3, it, 1)) for it in range(50)]
    b = [space.sample(SubnetSpace.rng_for(3, it, 1)) for it in range(50)]
    assert a == b
    c = [space.sample(SubnetSpace.rng_for(4, it, 1)) for it in range(50)]
    assert a != c
    counts = {}
    rng = random.Random(0)
    for _ in range(8000):
        s = space.sample(rng)
        counts[s] = counts.get(s, 0) + 1
    assert set(counts) == set(space.members())
    assert min(counts.values()) > 800 and max(counts.values()) < 1200


def test_stochastic_mode_keeps_first_block():
    space = SubnetSpace(R50, 'default', mode='stochastic')
    rng = random.Random(0)
    seen_gaps = False
    for _ in range(200):
        subnet = space.sample(rng)
        for kept, n in zip(subnet, R50):
            assert kept[0] == 0 and list(kept) == sorted(set(kept))
            assert kept[-1] < n
            seen_gaps |= kept != tuple(range(len(kept)))
    assert seen_gaps


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(depths='space9'), "depths='space9'"),
        (dict(depths=[[1], [1], [1]]), 'one list per stage'),
        (dict(depths=[[1, 4], [1], [1], [1]]), 'depths[0]=[1, 4]'),
        (dict(depths=[[], [1], [1], [1]]), 'depths[0]=[]'),
        (dict(depths=[[0], [1], [1], [1]]), 'depths in 1..3'),
        (dict(mode='random'), "mode='random'"),
    ],
)
def test_validation_errors_name_the_key(kwargs, message):
    with pytest.raises(ValueError) as e:
        SubnetSpace(R50, **kwargs)
    assert message in str(e.value)
    assert 'allowed' in str(e.value)


def test_preset_on_other_backbone_is_refused():
    with pytest.raises(ValueError, match='ResNet-50 stages'):
        SubnetSpace([2, 2, 2, 2], 'space3')
