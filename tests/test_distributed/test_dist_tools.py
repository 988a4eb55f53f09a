"""tools/dist_train.sh trains the Fashion-MNIST ST++ config on 2 CPU ranks;
tools/test.py and tools/dist_test.sh evaluate its checkpoint."""

import re
import sys

import mmengine
import pytest
from mmengine.config import Config

from .common import (
    REPO,
    cpu_env,
    dist_train_fmnist,
    free_port,
    load_tool,
    require_fashion_mnist,
    run,
    run_tool,
    tool_metrics,
)

CONFIG = REPO / 'configs/mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py'
ACCURACY = re.compile(r'Epoch\(test\).*accuracy/top1: ([0-9.]+)')


def load_test_tool():
    return load_tool('test')


def data_options(root, splits=('train', 'val', 'test')) -> list:
    return [f'{s}_dataloader.dataset.data_root={root}' for s in splits]


def parse_accuracy(output: str) -> float:
    found = ACCURACY.findall(output)
    assert len(found) == 1, output[-3000:]
    return float(found[0])


@pytest.mark.multiprocess
def test_dist_train_then_test_on_cpu(tmp_path):
    root = require_fashion_mnist()
    work_dir = tmp_path / 'work'
    train = dist_train_fmnist(
        CONFIG,
        work_dir,
        tmp_path,
        'val_dataloader.dataset.indices=64',
        'val_cfg.bn_recal_images=32',
    )
    log = train.stdout + train.stderr
    for rank in range(2):
        assert f'initialised gloo process group: rank {rank} of 2' in log
    # 64 images / (2 ranks x 16) = 2 ST++ iterations, then validation
    assert 'Epoch(train) [1][2/2]' in log, log[-3000:]
    assert 'subnet[1,1,1]/accuracy/top1' in log, log[-3000:]
    ckpt = work_dir / 'epoch_1.pth'
    assert ckpt.is_file(), sorted(p.name for p in work_dir.iterdir())

    test_opts = [
        '--cfg-options',
        'test_dataloader.dataset.indices=64',
        *data_options(root, ('test',)),
    ]
    run_tool(  # in this process: the libraries are imported already
        'test',
        CONFIG,
        ckpt,
        '--work-dir',
        tmp_path / 'test',
        '--out',
        tmp_path / 'preds.pkl',
        '--show-dir',
        tmp_path / 'vis',
        *test_opts,
    )
    accuracy = tool_metrics(tmp_path / 'test')['accuracy/top1']
    assert 0 <= accuracy <= 100
    preds = mmengine.load(tmp_path / 'preds.pkl')
    assert len(preds) == 64
    assert {'pred_label', 'gt_label', 'pred_score'} <= set(preds[0])
    assert list((tmp_path / 'vis').glob('*.png')), 'no image drawn'

    multi = run(
        [
            'bash',
            str(REPO / 'tools' / 'dist_test.sh'),
            str(CONFIG),
            str(ckpt),
            '2',
            '--work-dir',
            str(tmp_path / 'dist_test'),
            *test_opts,
        ],
        cwd=tmp_path,
        env=cpu_env(dict(PORT=str(free_port()))),
    )
    # the log prints 4 decimals: equal up to half the last one
    assert parse_accuracy(multi.stdout + multi.stderr) == pytest.approx(
        accuracy, abs=5e-5
    )


@pytest.mark.parametrize(
    'scope,hook,expected',
    [
        (
            'mmpretrain',
            dict(type='VisualizationHook', enable=False),
            dict(enable=True, out_dir='SHOW'),
        ),
        (
            'mmdet',
            dict(type='DetVisualizationHook'),
            dict(draw=True, test_out_dir='SHOW'),
        ),
        (
            'mmseg',
            dict(type='SegVisualizationHook'),
            dict(draw=True),
        ),
        (
            'mmpose',
            dict(type='PoseVisualizationHook', enable=False),
            dict(enable=True, out_dir='SHOW'),
        ),
    ],
)
def test_show_dir_per_library(scope, hook, expected):
    tool = load_test_tool()
    cfg = Config(
        dict(
            default_scope=scope,
            default_hooks=dict(visualization=hook),
            visualizer=dict(type='Visualizer'),
        )
    )
    tool.enable_show_dir(cfg, 'SHOW')
    expected = dict(hook, **expected)
    assert cfg.default_hooks.visualization.to_dict() == expected
    assert cfg.visualizer.get('save_dir') == (
        'SHOW' if scope == 'mmseg' else None
    )


def test_show_dir_needs_a_visualization_hook():
    tool = load_test_tool()
    with pytest.raises(ValueError, match='default_hooks.visualization'):
        tool.enable_show_dir(Config(dict(default_scope='mmpretrain')), 'x')


def test_out_appends_dump_results():
    tool = load_test_tool()
    dump = dict(type='DumpResults', out_file_path='p.pkl')
    acc = dict(type='Accuracy')
    cfg = tool.add_dump_results(Config(dict(test_evaluator=acc)), 'p.pkl')
    assert cfg.test_evaluator == [acc, dump]
    cfg = tool.add_dump_results(Config(dict(test_evaluator=[acc])), 'p.pkl')
    assert cfg.test_evaluator == [acc, dump]
    with pytest.raises(ValueError, match='must end with .pkl'):
        tool.add_dump_results(Config(dict(test_evaluator=acc)), 'p.json')


@pytest.mark.parametrize('tool', ['slurm_train', 'slurm_test'])
def test_slurm_scripts_call_srun(tmp_path, tool):
    """The Slurm scripts' srun command line, through a stand-in srun that
    prints its arguments and PYTHONPATH."""
    fake = tmp_path / 'srun'
    fake.write_text(
        '#!/usr/bin/env bash\necho "PYTHONPATH=$PYTHONPATH"\n'
        'for a in "$@"; do echo "ARG:$a"; done\n'
    )
    fake.chmod(0o755)
    env = cpu_env(
        dict(
            PATH=f'{tmp_path}:{cpu_env()["PATH"]}',
            GPUS='4',
            GPUS_PER_NODE='2',
            SRUN_ARGS='--quotatype=auto --time=1:00:00',
        )
    )
    third = 'WORK' if tool == 'slurm_train' else 'CKPT'
    proc = run(
        ['bash', str(REPO / 'tools' / f'{tool}.sh'), 'gpu', 'job', 'CFG']
        + [third, '--cfg-options', 'a=1'],
        cwd=tmp_path,
        env=env,
    )
    lines = proc.stdout.splitlines()
    args = [line[4:] for line in lines if line.startswith('ARG:')]
    script = str(
        REPO / 'tools' / ('train.py' if third == 'WORK' else 'test.py')
    )
    expected = [
        '-p',
        'gpu',
        '--job-name=job',
        '--gres=gpu:2',
        '--ntasks=4',
        '--ntasks-per-node=2',
        '--cpus-per-task=5',
        '--kill-on-bad-exit=1',
        '--quotatype=auto',
        '--time=1:00:00',
        sys.executable,
        '-u',
        script,
        'CFG',
    ]
    if tool == 'slurm_train':
        expected += ['--work-dir=WORK', '--launcher=slurm']
    else:
        expected += ['CKPT', '--launcher=slurm']
    assert args == expected + ['--cfg-options', 'a=1']
    assert lines[0].startswith(f'PYTHONPATH={REPO / "tools"}/..:')
