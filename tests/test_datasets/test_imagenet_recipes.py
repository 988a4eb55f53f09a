"""The ImageNet training configs as the authors' script ran them: the
training pipeline (ColorJitter, then UniformAugment for A2, no lighting),
the initialisation (no zero-initialised residual BN), and the optional real
lighting."""

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmst  # noqa: F401

IMAGENET = Path(__file__).resolve().parents[2] / 'configs/mmpretrain/imagenet'
RECIPES = {
    'resnet50_ct_in1k.py': 50,
    'resnet50_st_in1k.py': 50,
    'resnet50_stpp-a1_in1k.py': 50,
    'resnet50_stpp-a2_in1k.py': 50,
    'resnet101_st_in1k.py': 101,
}
BASE = [
    'LoadImageFromFile',
    'RandomResizedCrop',
    'RandomFlip',
    'ColorJitter',
]
# AlexNet's PCA of ImageNet RGB pixels on the 0..1 scale (the script's)
ALEXNET_EIGVAL = [0.2175, 0.0188, 0.0045]
ALEXNET_EIGVEC_RGB = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
]


def _architecture(cfg: Config) -> dict:
    return cfg.model.get('architecture', cfg.model)


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_train_pipeline(name):
    cfg = Config.fromfile(str(IMAGENET / name))
    pipeline = cfg.train_dataloader.dataset.pipeline
    types = [t['type'] for t in pipeline]
    if 'stpp-a2' in name:
        assert types == BASE + ['mmst.UniformAugment', 'PackInputs']
        ua = pipeline[4]
        assert ua.num_ops == 2 and ua.prob == 0.5
        assert ua.get('num_levels', 31) == 31 and ua.get('pad_val', 0) == 0
    else:
        assert types == BASE + ['PackInputs']
    jitter = pipeline[3]
    assert (jitter.brightness, jitter.contrast, jitter.saturation) == (
        0.4,
        0.4,
        0.4,
    )
    crop = 200 if 'stpp' in name else 224
    assert pipeline[1].scale == crop


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_initialisation_is_the_authors(name):
    """Kaiming-normal (fan-out) convolutions, every BN weight 1 and bias 0,
    classifier normal(0, 0.01) with zero bias."""
    from mmpretrain.registry import MODELS

    cfg = Config.fromfile(str(IMAGENET / name))
    arch = _architecture(cfg)
    assert arch.backbone.zero_init_residual is False
    assert arch.backbone.depth == RECIPES[name]
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(arch)
    model.init_weights()
    bns = [
        m
        for m in model.backbone.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    assert len(bns) == {50: 53, 101: 104}[RECIPES[name]]
    for bn in bns:
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    last = model.backbone.layer4[-1]
    for conv in (last.conv2, model.backbone.conv1):
        k = conv.kernel_size[0]
        want = (2 / (k * k * conv.out_channels)) ** 0.5
        assert conv.weight.std().item() == pytest.approx(want, rel=0.05)
    fc = model.head.fc
    assert fc.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.all(fc.bias == 0)


def test_real_lighting_option_saturates():
    """``real_lighting`` (AlexNet eigenvalues x 255, BGR rows) clips where
    mmpretrain's Lighting wraps around."""
    from mmpretrain.datasets.transforms import Lighting

    from mmst.registry import TRANSFORMS

    cfg = Config.fromfile(str(IMAGENET / 'resnet50_stpp-a2_in1k.py'))
    option = cfg.real_lighting
    assert option.type == 'mmst.ClippedLighting' and not option.to_rgb
    np.testing.assert_allclose(
        option.eigval, np.array(ALEXNET_EIGVAL) * 255, rtol=1e-6
    )
    np.testing.assert_array_equal(option.eigvec, ALEXNET_EIGVEC_RGB[::-1])
    ours = TRANSFORMS.build(option)
    upstream = Lighting(**{k: v for k, v in option.items() if k != 'type'})
    img = np.full((2, 3, 3), 254, np.uint8)
    img[1] = 1
    wrapped = 0
    for seed in range(100):
        np.random.seed(seed)
        out = ours(dict(img=img.copy()))['img']
        np.random.seed(seed)
        theirs = upstream(dict(img=img.copy()))['img']
        assert out.dtype == np.uint8
        assert np.all(np.abs(out.astype(int) - img) <= 20)
        moved = (theirs.astype(int) - img) * (out.astype(int) - img)
        assert np.all((out == theirs) | (out == 0) | (out == 255))
        wrapped += int(np.any(moved < 0))
    assert wrapped > 10  # mmpretrain's Lighting does wrap on these pixels


def test_script_lighting_is_at_most_one_grey_level():
    """The script's lighting (0..1 eigenvalues on a 0..255 image, cast back
    to uint8) moves no pixel by more than one level: why mmst leaves it
    out."""
    from mmpretrain.datasets.transforms import Lighting

    script = Lighting(
        eigval=ALEXNET_EIGVAL, eigvec=ALEXNET_EIGVEC_RGB, alphastd=0.1
    )
    img = np.random.default_rng(0).integers(1, 255, (8, 8, 3), np.uint8)
    np.random.seed(0)
    for _ in range(1000):
        out = script(dict(img=img.copy()))['img'].astype(int)
        assert np.abs(out - img).max() <= 1
