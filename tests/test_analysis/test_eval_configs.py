"""The ImageNet evaluation configs of released weights: the test transform
is the authors' torchvision one (PIL decoding without EXIF orientation,
Resize(240 or 256) of the shorter side with PIL, CenterCrop(224)) pixel for
pixel, and the docs name files that exist."""

import re
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {
    240: REPO / 'configs/mmpretrain/imagenet/resnet50_stpp_eval_in1k.py',
    256: REPO / 'configs/mmpretrain/imagenet/resnet50_eval-256_in1k.py',
}


def _image(path: Path, width: int, height: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(width * height)
    smooth = np.linspace(0, 200, width * height * 3).reshape(height, width, 3)
    noise = rng.integers(0, 55, (height, width, 3))
    Image.fromarray((smooth + noise).astype(np.uint8)).save(path, quality=90)


@pytest.mark.parametrize('short', sorted(CONFIGS))
def test_test_pipeline_is_torchvision(short, tmp_path):
    torchvision = pytest.importorskip('torchvision')
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope
    from mmpretrain.utils import register_all_modules
    from PIL import Image

    register_all_modules(init_default_scope=False)
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(str(CONFIGS[short]))
    assert (
        cfg.model.backbone.type == 'ResNet' and cfg.model.backbone.depth == 50
    )
    assert cfg.test_evaluator.topk == (1, 5)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == 'ImageNet'
        assert loader.dataset.pipeline[1].scale == short
    pipeline = cfg.test_dataloader.dataset.pipeline[:-1]  # up to the crop
    tv = torchvision.transforms
    reference = tv.Compose([tv.Resize(short), tv.CenterCrop(224)])
    for width, height in [(500, 375), (333, 517), (224, 224)]:
        path = tmp_path / f'{width}x{height}.jpg'
        _image(path, width, height)
        ours = Compose(pipeline)(dict(img_path=str(path)))['img']
        theirs = np.asarray(reference(Image.open(path).convert('RGB')))
        assert ours.shape == (224, 224, 3)
        np.testing.assert_array_equal(ours[..., ::-1], theirs)


@pytest.mark.parametrize('short', sorted(CONFIGS))
def test_decoding_ignores_exif_orientation(short, tmp_path):
    """A JPEG whose EXIF orientation tag says "rotate 90 degrees": the
    authors' loader (PIL ``Image.open(...).convert('RGB')``) ignores the
    tag, and so must the configs' pipelines (test and BN re-estimation),
    so that converted weights see the pixels they were validated on."""
    import mmcv
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope
    from mmpretrain.utils import register_all_modules
    from PIL import Image

    register_all_modules(init_default_scope=False)
    init_default_scope('mmpretrain')
    cfg = Config.fromfile(str(CONFIGS[short]))
    path = tmp_path / 'exif6.jpg'
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (300, 450, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(pixels).save(path, quality=95, exif=exif)
    assert Image.open(path).getexif()[0x0112] == 6
    raw = np.asarray(Image.open(path).convert('RGB'))[..., ::-1]  # BGR
    assert raw.shape == (300, 450, 3)
    # mmcv's default colour decoding would transpose it
    rotated = mmcv.imfrombytes(path.read_bytes(), backend='pillow')
    assert rotated.shape == (450, 300, 3)
    for loader in (cfg.test_dataloader, cfg.train_dataloader):
        load = loader.dataset.pipeline[0]
        assert load.type == 'LoadImageFromFile'
        assert load.imdecode_backend == 'pillow'
        assert load.color_type == 'color_ignore_orientation'
        img = Compose([load])(dict(img_path=str(path)))['img']
        np.testing.assert_array_equal(img, raw)


def test_docs_name_existing_files():
    for doc in ('docs/analysis.md', 'docs/released_weights.md'):
        text = (REPO / doc).read_text()
        paths = set(
            re.findall(r'(?:configs|tools)/[\w./+-]+\.(?:py|sh)', text)
        )
        assert paths, doc
        missing = sorted(p for p in paths if not (REPO / p).exists())
        assert not missing, f'{doc} names missing files: {missing}'
