"""ST through the real MMEngine Runner: plain checkpoints, resume, and the
sub-network validation loop."""

import copy
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

from .common import (
    make_folder_dataset,
    runner_cfg,
    st_cfg,
    tiny_classifier_cfg,
)


def _st_model(**kwargs):
    return st_cfg(
        num_subnets=2,
        logit_norm='layernorm',
        input_resize=dict(ratio_range=(0.43, 1.0)),
        arch=dict(in_channels=3),
        **kwargs,
    )


def _train(tmp_path, name, data_root, max_epochs=2, model=None, **kwargs):
    cfg = Config(
        runner_cfg(
            tmp_path / name,
            data_root,
            model or _st_model(),
            max_epochs=max_epochs,
            **kwargs,
        )
    )
    cfg.experiment_name = name
    cfg.custom_hooks = [dict(type='mmst.STCostHook')]
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


def _train_log(work_dir):
    """Per logged training step: the sub-network passes' mean depths and
    size (None without passes), the sub-network loss weight and the FLOPs
    ratio."""
    rows = []
    for path in sorted(work_dir.glob('*/vis_data/scalars.json')):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if 'subnet_weight' in rec:
                drawn = None
                if 'subnet_depth_s1' in rec:
                    drawn = (
                        rec['subnet_depth_s1'],
                        rec['subnet_depth_s2'],
                        rec['subnet_size'],
                    )
                rows.append(
                    (
                        rec['step'],
                        drawn,
                        rec['subnet_weight'],
                        rec['flops_ratio'],
                    )
                )
    return rows


#: Sub-network passes from iteration 2, weighted 1/3, 2/3, then 1: the
#: run interrupted after epoch 1 (iterations 0-2) resumes inside the
#: warm-up (iteration 3: 2/3).
SCHEDULE = dict(begin=2, warmup=2)


def test_plain_checkpoint_and_exact_resume(tmp_path):
    data_root = make_folder_dataset(tmp_path / 'data')
    model = _st_model(subnet_schedule=SCHEDULE)
    full = _train(tmp_path, 'full', data_root, model=model)

    ckpt = _load_checkpoint(str(tmp_path / 'full' / 'epoch_2.pth'))
    keys = list(ckpt['state_dict'])
    assert keys and all(not k.startswith('architecture.') for k in keys)
    assert any(k.startswith('backbone.layer1.') for k in keys)

    # The plain upstream classifier loads it strictly...
    from mmpretrain.registry import MODELS

    plain = MODELS.build(tiny_classifier_cfg(in_channels=3))
    plain.load_state_dict(ckpt['state_dict'], strict=True)
    # ...and a backbone takes it through init_cfg Pretrained.
    bb_cfg = copy.deepcopy(tiny_classifier_cfg(in_channels=3)['backbone'])
    bb_cfg['init_cfg'] = dict(
        type='Pretrained',
        checkpoint=str(tmp_path / 'full' / 'epoch_2.pth'),
        prefix='backbone.',
    )
    backbone = MODELS.build(bb_cfg)
    backbone.init_weights()
    # loaded, not computed: the same bits
    assert torch.equal(backbone.conv1.weight, plain.backbone.conv1.weight)

    # Interrupted after epoch 1, resumed: the same weights, sub-networks
    # and sub-network loss weights.
    _train(tmp_path, 'part', data_root, max_epochs=1, model=model)
    cfg = Config(runner_cfg(tmp_path / 'part', data_root, model, max_epochs=2))
    cfg.resume = True
    cfg.load_from = str(tmp_path / 'part' / 'epoch_1.pth')
    cfg.custom_hooks = [dict(type='mmst.STCostHook')]
    resumed = Runner.from_cfg(cfg)
    resumed.train()
    a = full.model.state_dict()
    b = resumed.model.state_dict()
    assert list(a) == list(b)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    log = _train_log(tmp_path / 'full')
    assert len(log) == 6  # 2 epochs x 3 iterations, logged each
    assert [w for _, _, w, _ in log] == [0, 0, 1 / 3, 2 / 3, 1, 1]
    # no sub-network pass before iteration 2: a CT step's FLOPs
    assert [d is None for _, d, _, _ in log] == [True] * 2 + [False] * 4
    assert [r == 1 for *_, r in log] == [True] * 2 + [False] * 4
    assert log == _train_log(tmp_path / 'part')

    # The cost (mmst.engine.STCostHook) goes on counting after the resume:
    # the same FLOPs ratio, CT-epoch equivalents and images as one run.
    cost = json.loads(
        next((tmp_path / 'full').glob('*/cost.json')).read_text()
    )
    assert cost['iters'] == 6 and 1.2 < cost['flops_ratio'] < 3.0
    assert cost['ct_epochs'] == pytest.approx(
        cost['flops_ratio'] * 2, rel=1e-12
    )
    totals = full.message_hub.get_info('mmst_cost')
    assert totals['images'] == 36  # 2 epochs of 18 images
    resumed_totals = resumed.message_hub.get_info('mmst_cost')
    for key in ('iters', 'ct_iters', 'images'):
        assert resumed_totals[key] == totals[key], key
    val = full.message_hub.get_scalar('val/cost/ct_epochs').current()
    assert val == cost['ct_epochs']


def test_subnet_val_loop_reports_subnets_and_keeps_main_stats(tmp_path):
    data_root = make_folder_dataset(tmp_path / 'data')
    val_cfg = dict(
        type='mmst.SubnetValLoop',
        subnets=['smallest', [1, 2, 1]],
        bn_recal_images=12,
    )
    runner = _train(tmp_path, 'val', data_root, max_epochs=1, val_cfg=val_cfg)
    before = copy.deepcopy(runner.model.state_dict())
    metrics = runner.val_loop.run()
    assert {
        'accuracy/top1',
        'subnet[1,1,1]/accuracy/top1',
        'subnet[1,2,1]/accuracy/top1',
    } <= set(metrics)
    after = runner.model.state_dict()
    for k in before:
        torch.testing.assert_close(before[k], after[k], rtol=0, atol=0)
    assert osp.exists(tmp_path / 'val')
