"""Settings errors (issue #24, items 7b and 7c): every integer setting of
mmst's components refuses a bool (``True`` is an int in Python:
``num_subnets=True`` used to train as 1), and an error about a nested
setting names its full dotted key (the temperature error used to say
``temperature=0``, not ``distill.temperature``); ``mmst.apis.check_config``
names it from the config's root (``model.distill.temperature``), the key a
``--cfg-options`` override uses."""

import copy

import pytest
from mmengine.config import Config

from mmst.apis import check_config, prepare_config
from mmst.datasets.transforms import UniformAugment
from mmst.engine.subnet_eval import check_subnet_val_args
from mmst.models.losses import KLDivergenceLoss
from mmst.settings import SettingError, setting_prefix
from mmst.subnet import InputSizeSampler, SubnetSpace
from tests.test_distributed.common import REPO

from .common import build, st_cfg

NOT_BOOL = 'allowed: an integer >= {} (not a bool)'


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (
            dict(num_subnets=True),
            'num_subnets=True is invalid; ' + NOT_BOOL.format(0),
        ),
        (
            dict(seed=False),
            'seed=False is invalid; allowed: an integer (not a bool), or None',
        ),
        (
            dict(space=dict(depths=[[1, True], [1], [2]])),
            'space.depths[0]=[1, True] is invalid; allowed: depths in 1..2 '
            '(stage 0 has 2 blocks)',
        ),
        (
            dict(input_resize=dict(size_range=(True, 20))),
            'input_resize.size_range=(True, 20) is invalid; allowed: two '
            'positive integers (min, max), min <= max',
        ),
        (
            dict(distill=dict(temperature=True)),
            'distill.temperature=True is invalid; allowed: a number > 0 '
            '(not a bool)',
        ),
        (
            dict(distill=dict(temperature=0)),
            'distill.temperature=0 is invalid; allowed: a number > 0',
        ),
        (
            dict(space=dict(depths='space9')),
            "space.depths='space9' is invalid; allowed: default | "
            'inter-stage | space1 |',
        ),
        (
            dict(space=dict(mode='random')),
            "space.mode='random' is invalid; allowed: ordered | stochastic",
        ),
        (
            dict(logit_amplitude=True),
            'logit_amplitude=True is invalid; allowed: a number (not a bool)',
        ),
        (
            dict(subnet_schedule=dict(begin=-1)),
            'subnet_schedule.begin=-1 is invalid; allowed: an integer >= 0',
        ),
        (
            dict(subnet_schedule=dict(warmup=True)),
            'subnet_schedule.warmup=True is invalid; ' + NOT_BOOL.format(0),
        ),
        (
            dict(subnet_schedule=dict(by_epoch=1)),
            'subnet_schedule.by_epoch=1 is invalid; allowed: True, False',
        ),
        (
            dict(subnet_schedule=dict(begin_epoch=3)),
            "subnet_schedule has unknown keys ['begin_epoch']; allowed: "
            "'begin', 'warmup', 'by_epoch'",
        ),
        (
            dict(subnet_schedule=3),
            'subnet_schedule=3 is invalid; allowed: None or dict(begin=',
        ),
    ],
    ids=[
        'num_subnets',
        'seed',
        'space-depth',
        'size_range',
        'temperature-bool',
        'temperature',
        'preset',
        'mode',
        'amplitude',
        'schedule-begin',
        'schedule-warmup',
        'schedule-by_epoch',
        'schedule-key',
        'schedule',
    ],
)
def test_st_model_names_the_nested_key(kwargs, message):
    """Built as a component: keys relative to the model config; under
    ``setting_prefix('model')`` (what check_config does): from the root."""
    with pytest.raises(SettingError) as info:
        build(st_cfg(arch=dict(depth=14), **kwargs))
    assert str(info.value).startswith(message)
    with pytest.raises(SettingError) as info:
        with setting_prefix('model'):
            build(st_cfg(arch=dict(depth=14), **kwargs))
    assert str(info.value).startswith('model.' + message)


@pytest.mark.parametrize(
    'make, message',
    [
        (
            lambda: check_subnet_val_args(bn_recal_images=True),
            'bn_recal_images=True is invalid; ' + NOT_BOOL.format(0),
        ),
        (
            lambda: check_subnet_val_args(recal_seed=True),
            'recal_seed=True is invalid; allowed: an integer (not a bool)',
        ),
        (
            lambda: check_subnet_val_args(subnets=[[1, True]]),
            'subnets entry [1, True] is invalid; allowed: ',
        ),
        (
            lambda: KLDivergenceLoss(temperature=False),
            'temperature=False is invalid; allowed: a number > 0 (not a bool)',
        ),
        (
            lambda: UniformAugment(num_ops=True),
            'num_ops=True is invalid; ' + NOT_BOOL.format(1),
        ),
        (
            lambda: UniformAugment(pad_val=True),
            'pad_val=True is invalid; allowed: an integer in [0, 255]',
        ),
        (
            lambda: InputSizeSampler(size_range=[8, True]),
            'size_range=[8, True] is invalid; allowed: two positive integers',
        ),
        (
            lambda: SubnetSpace([2, 2], [[1, 2], [True]]),
            'depths[1]=[True] is invalid; allowed: depths in 1..2',
        ),
    ],
    ids=[
        'bn_recal_images',
        'recal_seed',
        'subnets',
        'temperature',
        'num_ops',
        'pad_val',
        'size_range',
        'depths',
    ],
)
def test_integer_settings_refuse_bools(make, message):
    with pytest.raises(SettingError) as info:
        make()
    assert str(info.value).startswith(message)


@pytest.fixture(scope='module')
def fmnist_st() -> Config:
    """The shipped Fashion-MNIST ST config (read once)."""
    return Config.fromfile(
        REPO / 'configs/mmpretrain/fashion_mnist/resnet20_st_fmnist.py'
    )


def _with(cfg: Config, **options) -> Config:
    cfg = copy.deepcopy(cfg)
    cfg.merge_from_dict(options)
    return prepare_config(cfg)


@pytest.mark.parametrize(
    'options, message',
    [
        (
            {'model.distill.temperature': 0},
            'model.distill.temperature=0 is invalid; allowed: a number > 0',
        ),
        (
            {'model.num_subnets': True},
            'model.num_subnets=True is invalid; ' + NOT_BOOL.format(0),
        ),
        (
            {'val_cfg.bn_recal_images': True},
            'val_cfg.bn_recal_images=True is invalid; ' + NOT_BOOL.format(0),
        ),
        (
            {'model.architecture.backbone.subnet': [1, True, 1]},
            'model.architecture.backbone.subnet=[1, True, 1] is invalid for '
            'stage depths [3, 3, 3]; allowed: one integer depth per stage',
        ),
        (
            {
                'train_dataloader.dataset.pipeline': [
                    dict(type='mmst.UniformAugment', num_ops=True)
                ]
            },
            'train_dataloader.dataset.pipeline[0].num_ops=True is invalid; '
            + NOT_BOOL.format(1),
        ),
        (
            {
                'model.subnet_schedule': dict(begin=2, by_epoch=True),
                'train_cfg.by_epoch': False,
            },
            'model.subnet_schedule.by_epoch=True counts begin and warmup in '
            'epochs, but train_cfg.by_epoch=False trains by iterations',
        ),
        (
            {
                'model.subnet_schedule': dict(by_epoch=True),
                'train_cfg': dict(
                    _delete_=True, type='IterBasedTrainLoop', max_iters=9
                ),
            },
            'model.subnet_schedule.by_epoch=True counts begin and warmup in '
            "epochs, but train_cfg.type='IterBasedTrainLoop' trains by "
            'iterations',
        ),
    ],
    ids=[
        'temperature',
        'num_subnets',
        'val_cfg',
        'backbone',
        'transform',
        'by_epoch-iters',
        'by_epoch-loop',
    ],
)
def test_check_config_names_the_key_from_the_root(fmnist_st, options, message):
    """The shipped Fashion-MNIST ST config with one bad setting; a setting
    of an mmst component that an upstream one builds (the classifier's
    backbone) is found in the config by its type."""
    with pytest.raises(SettingError) as info:
        check_config(_with(fmnist_st, **options))
    assert str(info.value).startswith(message)


def test_upstream_errors_get_a_note_naming_the_setting(fmnist_st):
    options = {'model.architecture.head.type': 'NoHead'}
    with pytest.raises(KeyError) as info:
        check_config(_with(fmnist_st, **options))
    assert info.value.__notes__ == [
        'while building the setting model.architecture'
    ]


def test_epoch_schedule_with_an_epoch_based_loop_passes(fmnist_st):
    """The refusal above is about the loop: the same schedule in epochs
    passes with the shipped config's epoch-based ``train_cfg``."""
    options = {'model.subnet_schedule': dict(begin=1, warmup=2, by_epoch=True)}
    cfg = _with(fmnist_st, **options)
    assert cfg.train_cfg.by_epoch is True
    check_config(cfg)
