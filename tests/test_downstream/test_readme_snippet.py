"""The README's "add ST to your own config" snippet, copied verbatim (read
from the README under ``<!-- st-snippet -->``) into user configs over
upstream configs of the four libraries with backbones other than
ResNet-50, trains 2 iterations with MMEngine's own Runner.

Test-only changes, after the config is read: no weight downloads
(``init_cfg`` / ``pretrained`` cleared), generated data sets, a 2-iteration
schedule without validation. The models are the upstream ones, full size.
"""

import math

import pytest
import torch
from mmengine.runner import Runner

from mmst.testing import upstream

from ..test_distributed.common import run_tool
from .data import architecture, point_at_data, tiny_schedule

# name -> (upstream config, data kind, expected stage depths)
CASES = {
    'retinanet_r18': (
        'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
        'coco',
        [2, 2, 2, 2],
    ),
    'deeplabv3_r18-d8': (
        'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
        'cityscapes',
        [2, 2, 2, 2],
    ),
    'resnet18': (
        'mmpretrain::resnet/resnet18_8xb32_in1k.py',
        'imagenet',
        [2, 2, 2, 2],
    ),
    'simple_baseline_r50': (
        'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
        'td-hm_res50_8xb64-210e_coco-256x192.py',
        'coco_keypoints',
        [3, 4, 6, 3],
    ),
}


@pytest.fixture(scope='module')
def tiny_imagenet(tmp_path_factory):
    root = tmp_path_factory.mktemp('tiny_imagenet')
    run_tool('misc/make_tiny_imagenet', str(root), '--classes', '2')
    return root


@pytest.mark.parametrize('name', sorted(CASES))
def test_readme_snippet_trains_upstream_config(
    name, tmp_path, tiny_coco, tiny_cityscapes, tiny_imagenet
):
    spec, kind, stages = CASES[name]
    text = upstream.st_config_text(spec, upstream.readme_snippet())
    cfg = upstream.load_config(text, tmp_path, f'{name}_st.py')
    assert cfg.model.type == 'mmst.StimulativeTraining'

    upstream.clear_pretrained(architecture(cfg))
    if kind == 'imagenet':
        for loader in (cfg.train_dataloader,):
            loader.dataset.data_root = str(tiny_imagenet)
            loader.num_workers = 0
            loader.persistent_workers = False
        cfg.train_dataloader.batch_size = 2
    else:
        root = tiny_cityscapes if kind == 'cityscapes' else tiny_coco
        point_at_data(cfg, kind, root)
    tiny_schedule(cfg, iters=2)
    cfg.train_dataloader.dataset.indices = 4  # 2 iterations of 2 images
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    if cfg.train_cfg.get('type') == 'IterBasedTrainLoop':
        cfg.train_cfg.val_interval = 10
    cfg.work_dir = str(tmp_path / 'work_dir')

    runner = Runner.from_cfg(cfg)
    model = runner.model
    assert model.elastic.stage_depths == stages
    assert model.space.largest() == model.space.full()
    assert len(model.space) > 1
    distils = kind == 'imagenet'
    assert model.subnet_loss == ('kl' if distils else 'task')
    assert model.task.logit_norm == ('layernorm' if distils else 'none')
    runner.train()
    assert runner.iter == 2
    logs = runner.message_hub.log_scalars
    for key in ('train/loss_main', 'train/loss_subnet'):
        assert key in logs, sorted(logs)
        assert math.isfinite(logs[key].current()), (key, logs[key])
    params = [p for p in model.parameters() if p.requires_grad]
    assert all(torch.isfinite(p).all() for p in params)
