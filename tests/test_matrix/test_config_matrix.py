"""The config matrix (issue #11): every config under ``configs/`` builds
and trains, and per library each model kind trains, resumes, tests and
serves the library's inference API under a 2-process torchrun.

Configs are discovered from the folder; ``data.CONFIG_KINDS`` gives each
its data kind, and :func:`test_every_config_is_listed` checks that list
against the folder, so a config can be neither added without coverage nor
dropped from it silently.
"""

import functools
import math
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmst.apis import is_st_model, prepare_config

from ..test_apis.common import (
    api_predictions,
    assert_loaded,
    assert_same_predictions,
    last_checkpoint,
    st_predictions,
    train_in_process,
)
from ..test_distributed.common import (
    REPO,
    run_scenarios,
    tools_test,
)
from .data import (
    CONFIG_KINDS,
    CONFIG_ROOT,
    DIST_CELLS,
    cpu_norms,
    discover_configs,
    is_eval_only,
    library,
    matrix_config,
)

TRAIN = REPO / 'tools' / 'train.py'


CONFIGS = discover_configs()


def test_every_config_is_listed():
    missing = sorted(set(CONFIGS) - set(CONFIG_KINDS))
    stale = sorted(set(CONFIG_KINDS) - set(CONFIGS))
    assert not missing and not stale, (
        f'tests/test_matrix/data.py CONFIG_KINDS differs from configs/: '
        f'not listed {missing}, listed but absent {stale}'
    )
    assert len(CONFIGS) >= 40, CONFIGS  # the discovery itself works


@functools.lru_cache(maxsize=None)
def _model_kind(rel: str) -> tuple:
    """(library, whether the config's model is an ST model)."""
    model = Config.fromfile(str(CONFIG_ROOT / rel)).model
    return library(rel), is_st_model(model)


def test_torchrun_cells_cover_every_model_kind():
    """Per library, the torchrun cells include a plain-model config and an
    ST-model config whenever the library ships one (model type read from
    the configs)."""
    shipped = {
        _model_kind(rel)
        for rel, kind in CONFIG_KINDS.items()
        if not is_eval_only(kind)
    }
    cells = {_model_kind(rel) for rel in DIST_CELLS.values()}
    assert cells == shipped, (sorted(shipped - cells), sorted(cells - shipped))
    for cell, rel in DIST_CELLS.items():
        assert cell.split('-')[0] == library(rel), (cell, rel)


def _kl_configs() -> list:
    """The shipped configs whose sub-networks learn from the KL."""
    return [
        rel
        for rel in CONFIGS
        if _model_kind(rel)[1]
        and Config.fromfile(str(CONFIG_ROOT / rel)).model.get('subnet_loss')
        == 'kl'
    ]


def test_kl_configs_take_subnet_loss_task():
    """The documented fallback from the KL (docs/backbones.md, "The small
    Swin, the small ViT and the KL"): ``model.subnet_loss='task'`` on any
    shipped KL config builds. Before, the configs that spelled out the
    default ``distill`` failed with "distill=... would be ignored"."""
    from mmengine.registry import DefaultScope

    from mmst.registry import MODELS

    configs = _kl_configs()
    assert 'mmpretrain/imagenet/convnext-t_stpp_in1k.py' in configs, configs
    for rel in configs:
        cfg = Config.fromfile(str(CONFIG_ROOT / rel))
        cfg.merge_from_dict({'model.subnet_loss': 'task'})
        prepare_config(cfg)
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            model = MODELS.build(cfg.model)
        assert model.subnet_loss == 'task' and model.distill is None, rel


@pytest.mark.parametrize('rel', CONFIGS)
def test_config_trains_single_process(rel, matrix_data, tmp_path):
    """Runner.from_cfg builds the shrunk config and trains 2 iterations
    (the validation loop and evaluator are built, not run); eval-only
    configs build and test."""
    assert rel in CONFIG_KINDS, f'{rel}: add it to CONFIG_KINDS'
    cfg = matrix_config(rel, matrix_data)
    if is_eval_only(CONFIG_KINDS[rel]):
        cfg.work_dir = str(tmp_path / 'test')
        cfg.experiment_name = f'{tmp_path.name}_test'
        prepare_config(cfg)
        metrics = Runner.from_cfg(cfg).test()
        assert 'accuracy/top1' in metrics, metrics
        return
    cfg.train_cfg.val_begin = 10**6  # build the val loop, never run it
    runner = train_in_process(cfg, tmp_path / 'train', validate=True)
    assert runner.iter == 2, runner.iter
    scalars = runner.message_hub.log_scalars
    loss = scalars['train/loss'].current()
    assert math.isfinite(loss), loss
    if is_st_model(cfg.model):
        assert 'train/loss_subnet' in scalars, sorted(scalars)
        # mmst.engine.STCostHook, which prepare_config adds, counted the
        # passes of this task: sub-network passes cost more than nothing
        ratio = scalars['train/flops_ratio'].current()
        assert ratio > 1 or cfg.model.get('num_subnets', 1) == 0, ratio
        # the config's top-level data preprocessor reached the architecture
        want = cfg.get('data_preprocessor') or cfg.model.architecture.get(
            'data_preprocessor'
        )
        if want is not None and 'num_classes' in want:
            pre = runner.model.architecture.data_preprocessor
            assert pre.num_classes == want['num_classes'], (rel, want)
    assert last_checkpoint(tmp_path / 'train').name in (
        'epoch_1.pth',
        'iter_2.pth',
    )


# ------------------------------------------------------- torchrun cells ---


def _cell_plan(cell: str, matrix_data, root: Path) -> dict:
    """A torchrun cell's shrunk config (dumped under ``root``) and what
    its log and checkpoints must show: 2 iterations (global batch 2: 1 per
    rank, iteration-based loops 2 per rank), then 2 more after resuming
    (``extra`` options)."""
    rel = DIST_CELLS[cell]
    cfg = cpu_norms(matrix_config(rel, matrix_data, num_subnets=2))
    by_iter = cfg.train_cfg.get('type') == 'IterBasedTrainLoop'
    if by_iter:
        plan = dict(
            train_line='Iter(train) [2/2]',
            resumed='resumed epoch: 0, iter: 2',
            extra=['train_cfg.max_iters=4'],
            first='iter_2.pth',
            final='iter_4.pth',
            val='Iter(val)',
        )
    else:  # 4 training samples / (2 ranks x 1) = 2 iterations per epoch
        cfg.train_dataloader.batch_size = 1
        plan = dict(
            train_line='Epoch(train) [1][2/2]',
            resumed='resumed epoch: 1, iter: 2',
            extra=['train_cfg.max_epochs=2'],
            first='epoch_1.pth',
            final='epoch_2.pth',
            val='Epoch(val)',
        )
    cfg_file = root / cell / f'{cell}.py'
    cfg_file.parent.mkdir(parents=True)
    cfg.dump(str(cfg_file))
    return dict(plan, cfg=cfg, cfg_file=cfg_file, work=root / cell / 'train')


@pytest.fixture(scope='module')
def dist_runs(matrix_data, tmp_path_factory) -> dict:
    """Every torchrun cell trained, then resumed with validation, by
    tools/train.py in ONE torchrun launch of 2 gloo processes
    (tests/test_distributed/scripts/scenarios.py: the processes import torch
    and the four task libraries once, not 16 times). Cell -> its plan
    (:func:`_cell_plan`) with ``log`` and ``resumed_log``: rank 0's output
    of each of its two runs."""
    root = tmp_path_factory.mktemp('dist_cells')
    plans = {cell: _cell_plan(cell, matrix_data, root) for cell in DIST_CELLS}
    runs = []
    for cell, plan in plans.items():
        common = [TRAIN, plan['cfg_file'], '--work-dir', plan['work']]
        common += ['--launcher', 'pytorch']
        # names of its own: MMEngine reuses the logger and visualizer of
        # an earlier run in the process by name (mmdet names its
        # visualizer 'visualizer')
        runs.append(
            [*common, '--no-validate', '--cfg-options']
            + [
                f'experiment_name={cell}_train',
                f'visualizer.name={cell}_train',
            ]
        )
        runs.append(
            [*common, '--resume', '--cfg-options', *plan['extra']]
            + [f'experiment_name={cell}_resume']
            + [f'visualizer.name={cell}_resume']
        )
    proc, outputs = run_scenarios(runs, cwd=root, timeout=1200)
    log = proc.stdout + proc.stderr
    for rank in range(2):
        assert f'initialised gloo process group: rank {rank} of 2' in log
    for i, plan in enumerate(plans.values()):
        plan['log'], plan['resumed_log'] = outputs[2 * i : 2 * i + 2]
    return plans


@pytest.mark.multiprocess
@pytest.mark.parametrize('cell', list(DIST_CELLS))
def test_torchrun_train_resume_test_infer(cell, dist_runs, tmp_path):
    """One config of each model kind per library under torchrun (2 gloo
    processes, tools/train.py --launcher pytorch, :func:`dist_runs`):
    trained without validation, then resumed from that checkpoint with
    validation; tools/test.py on the last checkpoint tests the plain model
    and reports finite metrics; the library's inference API on it
    predicts what the config's own model predicts."""
    library = cell.split('-')[0]
    plan = dist_runs[cell]
    cfg, cfg_file, work = plan['cfg'], plan['cfg_file'], plan['work']
    log, resumed_log = plan['log'], plan['resumed_log']
    assert plan['train_line'] in log, log[-3000:]
    if is_st_model(cfg.model):
        assert 'loss_subnet' in log, log[-3000:]
    if cell == 'mmpretrain-plain':  # configs/_base_/st_runtime.py sets
        # mmst's wrapper for any model; a plain one gets MMEngine's DDP
        assert 'data-parallel training with MMDistributedDataParallel' in log
    assert plan['val'] not in log, log[-3000:]  # --no-validate
    assert plan['resumed'] not in log, log[-3000:]
    assert (work / plan['first']).is_file()

    assert plan['resumed'] in resumed_log, resumed_log[-3000:]
    assert plan['val'] in resumed_log, resumed_log[-3000:]
    final = plan['final']
    checkpoint = last_checkpoint(work)
    assert checkpoint.name == final, checkpoint
    meta = torch.load(checkpoint, map_location='cpu', weights_only=False)
    assert meta['meta']['iter'] == 4, meta['meta']

    tested = tmp_path / 'test'
    metrics = tools_test(cfg_file, checkpoint, tested)
    assert metrics and all(
        math.isfinite(v) for v in metrics.values() if isinstance(v, float)
    ), metrics
    dumped = Config.fromfile(str(tested / f'{cfg_file.stem}_test.py'))
    assert not is_st_model(dumped.model), dumped.model.type

    expected, infos, length = st_predictions(cfg, checkpoint)
    model, actual = api_predictions(library, cfg, checkpoint, infos)
    assert_loaded(model, checkpoint)
    assert_same_predictions(library, expected, actual, length)
