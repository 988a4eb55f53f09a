"""ST++ started from a checkpoint a user already has (docs/usage.md, "ST++
from a checkpoint you already have"), both documented steps on a plain
mmpretrain checkpoint of conventional training (CT) that loafs: the
loafing tool as the probe, then ``tools/train.py`` with the shipped
fine-tuning config, shortened with ``--cfg-options`` as the docs say."""

import json
from pathlib import Path

import pytest
import torch

from tests.test_distributed.common import load_tool, run_tool

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / 'data' / 'fashion_mnist'
CT_CONFIG = REPO / 'configs/mmpretrain/fashion_mnist/resnet20_ct_fmnist.py'
FT_CONFIG = (
    REPO / 'configs/mmpretrain/fashion_mnist/resnet20_stpp_ft_fmnist.py'
)
TRAIN_IMAGES, BATCH = 2048, 64
TEST_IMAGES, RECAL = 1000, 256
FT_ITERS, WARMUP = 16, 4

pytestmark = pytest.mark.skipif(
    not (DATA / 'train-images-idx3-ubyte').exists(),
    reason='Fashion-MNIST files missing (bash tools/setup_env.sh --data)',
)


def _data_config(path: Path, base: Path) -> str:
    """A user's config over ``base``: the first images of Fashion-MNIST."""
    path.write_text(
        f'_base_ = [{str(base)!r}]\n'
        f'data_root = {str(DATA)!r}\n'
        f'train_dataloader = dict(batch_size={BATCH}, '
        f'dataset=dict(data_root=data_root, indices={TRAIN_IMAGES}))\n'
        'val_dataloader = dict(batch_size=500, '
        f'dataset=dict(data_root=data_root, indices={TEST_IMAGES}))\n'
        'test_dataloader = val_dataloader\n'
        f'val_cfg = dict(bn_recal_images={RECAL})\n'
    )
    return str(path)


def _val_metrics(work_dir: Path) -> dict:
    """The last validation's metrics in ``scalars.json``."""
    (scalars,) = work_dir.glob('*/vis_data/scalars.json')
    lines = [json.loads(line) for line in scalars.read_text().splitlines()]
    return next(r for r in reversed(lines) if 'accuracy/top1' in r)


def test_probe_then_stpp_finetune_closes_loafing(tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmst.apis import prepare_config

    # A CT checkpoint that loafs: 64 SGD steps of the plain mmpretrain
    # classifier (the user's model; a model-zoo checkpoint has its keys)
    ct_config = _data_config(tmp_path / 'ct.py', CT_CONFIG)
    cfg = Config.fromfile(ct_config)
    cfg.work_dir = str(tmp_path / 'ct')
    cfg.train_cfg.max_epochs = cfg.param_scheduler.T_max = 2
    cfg.optim_wrapper.optimizer.lr = 0.3
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=2, save_last=True
    )
    cfg.log_level = 'WARNING'
    Runner.from_cfg(prepare_config(cfg)).train()
    ckpt = str(tmp_path / 'ct' / 'epoch_2.pth')

    # step 1, the probe: the loafing table of the user's checkpoint
    probe = load_tool('analysis_tools/loafing').main(
        [ct_config, ckpt, '--labels', 'CT', '--subnets', '1,1,1', '2,2,2']
        + ['--bn-recal-images', str(RECAL), '--no-progress']
        + ['--out-dir', str(tmp_path / 'probe')]
    )
    before = {n['name']: n['results']['CT'] for n in probe['networks']}
    assert before['[1,1,1]'] < before['main'] - 15, before  # it loafs

    # step 2: the fine-tuning config from that checkpoint, shortened
    ft_config = _data_config(tmp_path / 'ft.py', FT_CONFIG)
    work = tmp_path / 'ft'
    run_tool(
        'train',
        ft_config,
        '--work-dir',
        work,
        '--cfg-options',
        f'load_from={ckpt}',
        f'train_cfg.max_iters={FT_ITERS}',
        f'train_cfg.val_interval={FT_ITERS}',
        f'param_scheduler.0.end={WARMUP}',
        f'param_scheduler.1.begin={WARMUP}',
        f'param_scheduler.1.end={FT_ITERS}',
        f'param_scheduler.1.T_max={FT_ITERS - WARMUP}',
    )
    after = _val_metrics(work)
    # the same images and re-estimation as the probe; thresholds from the
    # measured runs (docs/benchmarks.md), with margin
    assert after['subnet[1,1,1]/accuracy/top1'] > before['[1,1,1]'] + 1.5
    assert after['accuracy/top1'] > before['main'] - 3.0
    # what it cost: 16 ST++ iterations of 32 per epoch, at their FLOPs
    (cost,) = work.glob('*/cost.json')
    cost = json.loads(cost.read_text())
    assert cost['iters'] == FT_ITERS
    assert cost['ct_epochs'] == pytest.approx(
        cost['flops_ratio'] * FT_ITERS / (TRAIN_IMAGES // BATCH), rel=1e-12
    )
    assert after['cost/ct_epochs'] == cost['ct_epochs']
    assert torch.load(ckpt, map_location='cpu')['state_dict']
