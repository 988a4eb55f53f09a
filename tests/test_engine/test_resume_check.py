"""``tools/train.py`` refuses, before the Runner writes anything to the
work dir: a ``--resume`` whose model config differs from the checkpoint's
(unless ``--resume-model-change``, which resumes with a warning), and a
config that fails one of mmst's checks (a bad ``val_cfg``, a bad model
setting). Issue #24, items 6 and 7a.

One real training run (tools/train.py in this process, 3 iterations of a
tiny ST++ model on a folder dataset) makes the work dir that the other
tests try to spoil; each checks that every file of it (the config copy,
the log folder, the checkpoint, ``last_checkpoint``) is byte-identical
afterwards.
"""

import logging
import shutil
from pathlib import Path
from typing import Dict

import pytest
from mmengine.config import Config
from mmengine.logging import MMLogger

from mmst.apis import check_config, prepare_config
from mmst.engine.resume_check import (
    ResumeModelError,
    check_resume_model,
    model_config_diff,
    parse_model_section,
)
from mmst.settings import SettingError
from tests.test_core.common import make_folder_dataset
from tests.test_distributed.common import run_tool

from .common import engine_cfg, st_model

VAL_CFG = dict(type='mmst.SubnetValLoop', subnets=['smallest'])


@pytest.fixture(scope='module')
def trained(tmp_path_factory) -> Dict[str, Path]:
    """A work dir after one tools/train.py run: ``config`` (the config
    file), ``work_dir``, ``checkpoint`` (epoch_1.pth)."""
    root = tmp_path_factory.mktemp('resume_check')
    data_root = make_folder_dataset(root / 'data')
    work_dir = root / 'work'
    cfg = engine_cfg(
        work_dir,
        data_root,
        st_model(space=dict(depths=[[1, 2], [1, 2], [2]])),
        val_cfg=dict(VAL_CFG, bn_recal_images=6),
    )
    config = root / 'tiny_stpp.py'
    cfg.dump(str(config))
    run_tool('train', config, '--cfg-options', 'experiment_name=rc_first')
    checkpoint = work_dir / 'epoch_1.pth'
    assert checkpoint.is_file()
    return dict(config=config, work_dir=work_dir, checkpoint=checkpoint)


def snapshot(folder: Path) -> Dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes) and every
    folder (-> b'<dir>')."""
    return {
        str(p.relative_to(folder)): b'<dir>' if p.is_dir() else p.read_bytes()
        for p in sorted(folder.rglob('*'))
    }


def refused(trained, error, match: str, *args: str) -> None:
    """tools/train.py CONFIG ARGS into the trained work dir raises
    ``error`` matching ``match`` and leaves the work dir as it was."""
    before = snapshot(trained['work_dir'])
    assert 'tiny_stpp.py' in before  # the previous run's config copy
    with pytest.raises(error, match=match):
        run_tool('train', trained['config'], *args)
    assert snapshot(trained['work_dir']) == before


# -- 7a: every config check before anything is written ------------------
@pytest.mark.parametrize(
    'option, match',
    [
        (
            'val_cfg.bn_recal_images=-1',
            r'^val_cfg\.bn_recal_images=-1 is invalid; allowed: an '
            r'integer >= 0$',
        ),
        (
            'val_cfg.subnets=[tiny]',
            r"^val_cfg\.subnets entry 'tiny' is invalid; allowed: all \| ",
        ),
        (
            'val_cfg.subnets=[[1,1]]',
            r'^val_cfg\.subnets entry 1,1 is invalid for stage depths '
            r'\[2, 2, 2\]; allowed: one integer depth per stage',
        ),
        (
            'val_cfg.bn_recal_imgs=6',
            r"^val_cfg has unknown keys \['bn_recal_imgs'\] for "
            r'SubnetValLoop; allowed: subnets, bn_recal_images, ',
        ),
        (
            'model.distill.temperature=0',
            r'^model\.distill\.temperature=0 is invalid; allowed: a '
            r'number > 0$',
        ),
    ],
    ids=['bn_recal_images', 'subnets', 'subnet-fit', 'unknown', 'model'],
)
def test_bad_config_is_refused_before_the_work_dir_changes(
    trained, option, match
):
    """Before: the Runner copied the config into the work dir (over the
    previous run's copy) and made a log folder, then the loop refused."""
    refused(trained, SettingError, match, '--cfg-options', option)


MISSING_INIT = [
    'model.architecture.backbone.init_cfg.type=Pretrained',
    'model.architecture.backbone.init_cfg.checkpoint=nowhere/backbone.pth',
]


def test_missing_pretrained_file_is_refused_before_the_work_dir_changes(
    trained,
):
    """#25: a Pretrained init naming a missing local file (the headline
    config without checkpoints/r50_stpp_backbone.pth). Before: MMEngine's
    bare FileNotFoundError when Runner.train initialised the weights, after
    the Runner had written the work dir."""
    refused(
        trained,
        SettingError,
        r'^model\.architecture\.backbone\.init_cfg\.checkpoint='
        r"'nowhere/backbone\.pth': no such file .*, or train the layers from "
        r'scratch \(--cfg-options model\.architecture\.backbone\.init_cfg='
        r'None\)$',
        '--cfg-options',
        *MISSING_INIT,
    )


# -- 6: --resume with another model --------------------------------------
@pytest.mark.parametrize('explicit', [True, False], ids=['path', 'auto'])
def test_resume_with_another_model_is_refused(trained, explicit):
    """``num_subnets`` 2 -> 1 and another space: refused, naming the keys
    (old -> new) and the checkpoint; auto-resume (``--resume`` without a
    path) compares with the checkpoint ``last_checkpoint`` names."""
    resume = ['--resume', trained['checkpoint']] if explicit else ['--resume']
    refused(
        trained,
        ResumeModelError,
        r'^--resume: the model config differs from the one '
        + r'.*epoch_1\.pth was trained with \(3 key\(s\), checkpoint -> '
        r'now\): model\.num_subnets: 2 -> 1; model\.space\.depths\[0\]\[1\]:'
        r' 2 -> \(absent\); model\.space\.depths\[2\]\[0\]: 2 -> 1; resume '
        r'with the config the run started with, or allow the change '
        r'explicitly \(tools/train\.py --resume-model-change',
        *resume,
        '--cfg-options',
        'model.num_subnets=1',
        'model.space.depths=[[1],[1,2],[1]]',
    )


def test_resume_model_change_resumes_with_a_warning(trained, tmp_path):
    work_dir = tmp_path / 'work'
    shutil.copytree(trained['work_dir'], work_dir)
    last = work_dir / 'last_checkpoint'
    last.write_text(str(work_dir / 'epoch_1.pth'))
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        run_tool(
            'train',
            trained['config'],
            '--work-dir',
            work_dir,
            '--resume',
            '--resume-model-change',
            '--cfg-options',
            'model.logit_norm=l2',
            'train_cfg.max_epochs=2',
            'experiment_name=rc_changed',
        )
    finally:
        logger.removeHandler(handler)
    warnings = [
        r.getMessage() for r in records if r.levelno == logging.WARNING
    ]
    assert (
        '--resume-model-change: the model config differs from the one '
        f'{work_dir / "epoch_1.pth"} was trained with (1 key(s), checkpoint '
        "-> now): model.logit_norm: 'layernorm' -> 'l2'; resuming anyway"
    ) in warnings
    assert (work_dir / 'epoch_2.pth').is_file()  # it trained on


def test_same_model_resumes_and_only_model_is_compared(trained):
    """The config the run started with (plus changes outside ``model``)
    passes; ``init_cfg`` is not compared."""
    cfg = Config.fromfile(trained['config'])
    cfg.merge_from_dict(
        {
            'train_cfg.max_epochs': 5,
            'val_cfg': None,
            'model.architecture.init_cfg': dict(
                type='Pretrained', checkpoint='x'
            ),
        }
    )
    assert check_resume_model(str(trained['checkpoint']), cfg) == []


def test_model_config_diff_normalises_values():
    """Tuples equal lists; a bool is not an int; keys only one side has
    are listed as (absent); nested paths with indices."""
    old = 'model = dict(type="A", a=(1, 2), b=dict(c=1.0), d=1, e=[dict(f=1)])'
    new = dict(
        model=dict(type='A', a=[1, 2], b=dict(c=1), d=True, e=[dict(g=1)])
    )
    assert model_config_diff(old, new) == [
        'model.d: 1 -> True',
        'model.e[0].f: 1 -> (absent)',
        'model.e[0].g: (absent) -> 1',
    ]


def test_stored_config_is_read_not_executed(tmp_path):
    """A checkpoint's config text is read as literals: code in it is
    refused, not run (``Config.fromstring`` would execute it)."""
    marker = tmp_path / 'ran'
    text = f'import os\nos.mkdir({str(marker)!r})\nmodel = dict(type="A")\n'
    assert parse_model_section(text) == dict(type='A')
    with pytest.raises(ValueError, match='not a literal'):
        parse_model_section(
            f'model = dict(a=__import__("os").mkdir("{marker}"))'
        )
    cfg = Config(dict(model=dict(type='B')))
    with pytest.raises(ResumeModelError, match="model.type: 'A' -> 'B'"):
        check_resume_model(dict(cfg=text), cfg)
    assert not marker.exists()


def test_check_config_names_settings_from_the_root(trained):
    cfg = Config.fromfile(trained['config'])
    prepare_config(cfg)
    text = cfg.pretty_text
    check_config(cfg)  # the trained config passes, unchanged
    assert cfg.pretty_text == text
    cfg.model.num_subnets = True
    with pytest.raises(
        SettingError,
        match=r'^model\.num_subnets=True is invalid; allowed: an integer '
        r'>= 0 \(not a bool\)$',
    ):
        check_config(cfg)


# -- found by a new-user check ---------------------------------------------
def test_truncated_resume_file_is_refused_before_writing(trained, tmp_path):
    """``--resume FILE`` naming a truncated checkpoint: one line, and the
    work dir (the previous run's config copy) as it was. Before, the
    refusal came from the hook, after the Runner had written."""
    bad = tmp_path / 'bad.pth'
    bad.write_bytes(trained['checkpoint'].read_bytes()[:1000])
    refused(
        trained,
        RuntimeError,
        rf'^--resume {bad}: the checkpoint is truncated or not a '
        r'torch\.save file \(no zip directory\); give a complete one',
        '--resume',
        str(bad),
    )


@pytest.mark.parametrize(
    'options, match',
    [
        (['model.num_subnets=True'], r'^model\.num_subnets=True is invalid'),
        (['val_cfg.bn_recal_images=-1'], r'^val_cfg\.bn_recal_images=-1 is'),
        (
            [
                'model.architecture.backbone.type=mmst.ElasticResNet_CIFAR',
                'model.architecture.backbone.subnet=[1,True,1]',
            ],
            r'^model\.architecture\.backbone\.subnet=\[1, True, 1\] is '
            r'invalid for stage depths \[2, 2, 2\]; allowed: one integer '
            r'depth per stage',
        ),
    ],
    ids=['model', 'val_cfg', 'nested'],
)
def test_test_tool_checks_the_st_settings(trained, tmp_path, options, match):
    """tools/test.py evaluates the plain model, but the ST config's own
    settings are checked first, before the Runner makes the work dir: a
    bad one is an error, not dropped."""
    work = tmp_path / 'test'
    with pytest.raises(SettingError, match=match):
        run_tool(
            'test',
            trained['config'],
            trained['checkpoint'],
            '--work-dir',
            work,
            '--cfg-options',
            *options,
        )
    assert not work.exists()


def test_test_tool_keeps_the_training_config_copy(trained, tmp_path):
    """tools/test.py in a training run's work dir copies the plain config
    as NAME_test.py; the training run's NAME.py stays (before, the plain
    config replaced it). A Pretrained init naming a missing file is no
    obstacle to testing (MMEngine's Runner.test never initialises the
    weights; every weight comes from the checkpoint), so tools/test.py
    does not refuse it as tools/train.py does."""
    from mmengine.config import Config

    cfg = Config.fromfile(trained['config'])
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.test_cfg = dict()
    (tmp_path / 'cfg').mkdir()
    config = tmp_path / 'cfg' / 'tiny_stpp.py'
    cfg.dump(str(config))
    work = tmp_path / 'work'
    work.mkdir()
    copy = work / 'tiny_stpp.py'
    copy.write_bytes((trained['work_dir'] / 'tiny_stpp.py').read_bytes())
    before = copy.read_bytes()
    run_tool(
        'test',
        config,
        trained['checkpoint'],
        '--work-dir',
        work,
        '--cfg-options',
        'experiment_name=rc_test_copy',
        *MISSING_INIT,
    )
    assert copy.read_bytes() == before
    assert (
        'StimulativeTraining' not in (work / 'tiny_stpp_test.py').read_text()
    )
