"""Every mmpretrain config of mmst builds, its training pipeline runs on an
image, and its model runs one training step on a small batch."""

import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample

import mmst  # noqa: F401

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    glob.glob(osp.join(ROOT, 'configs', 'mmpretrain', '*', '*.py'))
)
CONFIGS = [c for c in CONFIGS if '_base_' not in c]


def _input_size(path: str) -> int:
    if 'fashion_mnist' in path:
        return 28
    if 'cifar' in path:
        return 32
    return 224 if 'vit' in path else 64


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_config_builds_and_trains_one_step(path):
    cfg = Config.fromfile(path)
    init_default_scope(cfg.default_scope)
    from mmpretrain.registry import MODELS

    model_cfg = cfg.model
    if cfg.get('data_preprocessor'):  # what the Runner does
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = MODELS.build(model_cfg)
    model.train()

    size = _input_size(path)
    channels = 1 if 'fashion_mnist' in path else 3
    pipeline = Compose(
        [
            t
            for t in cfg.train_dataloader.dataset.pipeline
            if t['type'] != 'LoadImageFromFile'
        ]
    )
    img = np.random.randint(0, 255, (size, size, channels), dtype=np.uint8)
    if channels == 1:
        img = img[..., 0]
    packed = pipeline(dict(img=img, img_shape=img.shape[:2], gt_label=1))
    assert packed['inputs'].shape[-2:] in {
        (size, size),
        (200, 200),
        (224, 224),
    }

    n = 2
    data = dict(
        inputs=[
            torch.randint(0, 255, (channels, size, size), dtype=torch.uint8)
            for _ in range(n)
        ],
        data_samples=[DataSample().set_gt_label(i) for i in range(n)],
    )
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
    log_vars = model.train_step(data, optim)
    assert torch.isfinite(torch.as_tensor(float(log_vars['loss'])))
    if cfg.model.type == 'mmst.StimulativeTraining':
        assert 'loss_subnet' in log_vars
        # the dataset's preprocessor reached the architecture
        pre = model.architecture.data_preprocessor
        want = cfg.get('data_preprocessor') or cfg.model.architecture.get(
            'data_preprocessor'
        )
        assert pre.num_classes == want['num_classes']
