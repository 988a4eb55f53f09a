import random

import pytest

from mmst.subnet import (
    NAMED_SUBNETS,
    SubnetSpace,
    format_subnet,
    parse_subnet_specs,
    resolve_subnets,
)

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
    with pytest.raises(ValueError, match='ResNet-50 stages') as info:
        SubnetSpace([2, 2, 2, 2], 'space3')
    assert "'inter-stage'" in str(info.value)


def _ranges(choices):
    return [(c[0], c[-1]) for c in choices]


@pytest.mark.parametrize(
    'stages, expected',
    [
        # ResNet-34 / 50 (the paper's space3), 101, 152
        ([3, 4, 6, 3], [(3, 3), (3, 4), (3, 6), (3, 3)]),
        ([3, 4, 23, 3], [(3, 3), (3, 4), (3, 23), (3, 3)]),
        ([3, 8, 36, 3], [(3, 3), (3, 8), (3, 36), (3, 3)]),
        # ConvNeXt-T, Swin-T: only the long middle stage is sampled
        ([3, 3, 9, 3], [(3, 3), (3, 3), (3, 9), (3, 3)]),
        ([2, 2, 6, 2], [(2, 2), (2, 2), (2, 6), (2, 2)]),
        # equally long stages (ResNet-18, CIFAR ResNet-20): half a stage
        ([2, 2, 2, 2], [(1, 2)] * 4),
        ([3, 3, 3], [(2, 3)] * 3),
    ],
)
def test_inter_stage_rule_for_any_stages(stages, expected):
    space = SubnetSpace(stages, 'inter-stage')
    assert _ranges(space.depth_choices) == expected
    assert space.largest() == space.full()
    assert len(space) > 1


def test_inter_stage_is_space3_on_resnet50():
    assert SubnetSpace(R50, 'inter-stage').depth_choices == EXPECTED['space3']


# -- the one sub-network spec parser (tools, SubnetValLoop, depth menu) ----
ALLOWED = 'allowed: all | smallest | largest | full or the blocks kept'


def test_parse_named_and_depth_specs():
    assert NAMED_SUBNETS == ('all', 'smallest', 'largest', 'full')
    for name in NAMED_SUBNETS:
        assert parse_subnet_specs([name]) == [name]
        assert parse_subnet_specs([f' {name} ']) == [name]
    assert parse_subnet_specs(['1,2,3']) == [[1, 2, 3]]
    assert parse_subnet_specs(['[1, 2, 3]', '(2,2,2)', ' 3 , 1,2 ']) == [
        [1, 2, 3],
        [2, 2, 2],
        [3, 1, 2],
    ]
    assert parse_subnet_specs([[1, 2, 3], (2, 2, 2)]) == [
        [1, 2, 3],
        [2, 2, 2],
    ]
    assert parse_subnet_specs('smallest') == ['smallest']  # one spec
    assert parse_subnet_specs([], allow_empty=True) == []


@pytest.mark.parametrize(
    'value', ['1,x', 'tiny', '', '1,,2', '0,1,1', '-1,2', [0, 1], [1.5, 2]]
)
def test_parse_rejects_bad_values(value):
    with pytest.raises(ValueError) as e:
        parse_subnet_specs([value], '--subnets')
    text = str(e.value)
    assert text.startswith(f'--subnets entry {value!r} is invalid; ')
    assert ALLOWED in text and 'e.g. 1,2,3' in text


def test_parse_rejects_empty_and_non_lists():
    with pytest.raises(ValueError, match=r'--subnets=\[\] is invalid'):
        parse_subnet_specs([])
    with pytest.raises(ValueError, match=r'subnets=3 is invalid'):
        parse_subnet_specs(3, 'subnets')


def test_resolve_in_a_space():
    space = SubnetSpace([3, 3, 3])
    assert resolve_subnets(['smallest', 'largest', 'full'], space) == [
        ((0,), (0,), (0,)),
        ((0, 1, 2),) * 3,
    ]  # largest == full: one entry
    assert resolve_subnets(['1,2,3', [1, 2, 3]], space) == [
        ((0,), (0, 1), (0, 1, 2))
    ]
    assert len(resolve_subnets('all', space)) == 27
    with pytest.raises(ValueError) as e:
        resolve_subnets(['1,2,4'], space, '--subnets')
    assert str(e.value) == (
        '--subnets entry 1,2,4 is invalid for stage depths [3, 3, 3]; '
        'allowed: one integer depth per stage, 1 <= depth <= the stage '
        'length; got stage 3 keeping 4 blocks (1..3)'
    )
    with pytest.raises(ValueError, match='got 2 values for 3 stages'):
        resolve_subnets([[1, 1]], space)


def test_mmst_engine_reexports_the_parser():
    from mmst import engine
    from mmst.engine import subnet_eval

    assert engine.resolve_subnets is resolve_subnets
    assert subnet_eval.NAMED_SUBNETS is NAMED_SUBNETS


def test_subnet_val_loop_rejects_bad_specs_when_built(tmp_path):
    """The loop refuses a bad ``subnets`` entry with the parser's message
    when the loops are built, before the first training iteration."""
    from mmengine.runner import Runner

    from tests.test_core.common import make_folder_dataset
    from tests.test_engine.common import engine_cfg, st_model

    data_root = make_folder_dataset(tmp_path / 'data')
    for bad, message in [
        ('tiny', "subnets entry 'tiny' is invalid; " + ALLOWED),
        ('1,2,9', 'subnets entry 1,2,9 is invalid for stage depths'),
    ]:
        cfg = engine_cfg(
            tmp_path / bad,
            data_root,
            st_model(),
            val_cfg=dict(
                type='mmst.SubnetValLoop',
                subnets=['smallest', bad],
                bn_recal_images=0,
            ),
        )
        cfg.experiment_name = f'bad_subnets_{bad}'
        runner = Runner.from_cfg(cfg)
        with pytest.raises(ValueError) as e:
            runner.train()
        assert message in str(e.value)
        assert runner.iter == 0
