"""mmst.UniformAugment is the ST++ authors' UniAugment (TrivialAugment's
aug_lib, search space 'fixed_standard', 31 levels): the operation set, the
level scaling, each operation's pixels (against the Pillow calls of
aug_lib, written out below) and the draw statistics."""

import math
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from mmst.datasets.transforms import UniformAugment

OPS = {
    'Identity',
    'AutoContrast',
    'Equalize',
    'Rotate',
    'Solarize',
    'Color',
    'Posterize',
    'Contrast',
    'Brightness',
    'Sharpness',
    'ShearX',
    'ShearY',
    'TranslateX',
    'TranslateY',
}
TOP = 30  # aug_lib's PARAMETER_MAX: 31 levels


def _reference(pil: Image.Image, name: str, level: int, sign: int):
    """aug_lib's operation at ``level`` (sign of the geometric ones given),
    as Pillow calls."""
    if name == 'Identity':
        return pil
    if name == 'AutoContrast':
        return ImageOps.autocontrast(pil)
    if name == 'Equalize':
        return ImageOps.equalize(pil)
    if name == 'Rotate':
        return pil.rotate(sign * int(level * 30 / TOP))
    if name == 'Solarize':
        return ImageOps.solarize(pil, 256 - int(level * 256 / TOP))
    if name == 'Posterize':
        return ImageOps.posterize(pil, 8 - int(level * 4 / TOP))
    if name in ('Color', 'Contrast', 'Brightness', 'Sharpness'):
        factor = float(level) * (1.9 - 0.1) / TOP + 0.1
        return getattr(ImageEnhance, name)(pil).enhance(factor)
    shear = sign * float(level) * 0.3 / TOP
    shift = sign * int(level * 10 / TOP)
    data = {
        'ShearX': (1, shear, 0, 0, 1, 0),
        'ShearY': (1, 0, 0, shear, 1, 0),
        'TranslateX': (1, 0, shift, 0, 1, 0),
        'TranslateY': (1, 0, 0, 0, 1, shift),
    }[name]
    return pil.transform(pil.size, Image.AFFINE, data)


def _images():
    """Two RGB test images: colour ramps with noise, and uniform noise."""
    rng = np.random.default_rng(0)
    height, width = 61, 83
    yy, xx = np.mgrid[0:height, 0:width]
    ramps = np.stack(
        [xx * 255 / width, yy * 255 / height, (xx + yy) * 0.8 + 40], -1
    )
    smooth = np.clip(ramps + rng.normal(0, 20, ramps.shape), 0, 255)
    noise = rng.integers(0, 256, (height, width, 3))
    return [a.astype(np.uint8) for a in (smooth, noise)]


def test_operation_set_and_ranges():
    t = UniformAugment()
    assert set(t.OPS) == OPS and len(t.OPS) == 14
    assert t.num_ops == 2 and t.prob == 0.5 and t.num_levels == 31
    ends = {
        name: (t.parameter(name, 0), t.parameter(name, 30)) for name in OPS
    }
    assert ends['Rotate'] == (0, 30)  # degrees
    assert ends['Solarize'] == (256, 0)  # threshold
    assert ends['Posterize'] == (8, 4)  # bits kept
    for name in ('Color', 'Contrast', 'Brightness', 'Sharpness'):
        assert ends[name] == pytest.approx((0.1, 1.9))
    for name in ('ShearX', 'ShearY'):
        assert ends[name] == pytest.approx((0.0, 0.3))
    for name in ('TranslateX', 'TranslateY'):
        assert ends[name] == (0, 10)  # pixels
    for name in ('Identity', 'AutoContrast', 'Equalize'):
        assert ends[name] == (None, None)
    # linear in the level, truncated to integers where aug_lib truncates
    assert [t.parameter('Rotate', lv) for lv in range(31)] == list(range(31))
    bits = Counter(t.parameter('Posterize', lv) for lv in range(31))
    assert bits == {8: 8, 7: 7, 6: 8, 5: 7, 4: 1}
    pixels = [t.parameter('TranslateX', lv) for lv in range(31)]
    assert pixels == [lv // 3 for lv in range(31)]
    assert t.parameter('Solarize', 15) == 128
    assert t.parameter('Color', 15) == pytest.approx(1.0)


@pytest.mark.parametrize('name', sorted(OPS))
def test_each_operation_is_the_pillow_call(name):
    """Every level, both signs, two images: pixel for pixel."""
    t = UniformAugment()
    for rgb in _images():
        pil = Image.fromarray(rgb)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        for level in range(31):
            for negative in (False, True):
                ours = t.apply_op(bgr.copy(), name, level, negative)
                theirs = _reference(pil, name, level, -1 if negative else 1)
                assert ours.dtype == np.uint8 and ours.shape == bgr.shape
                np.testing.assert_array_equal(
                    ours[..., ::-1],
                    np.asarray(theirs),
                    err_msg=f'{name} level {level} negative={negative}',
                )


def _within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_draw_statistics(monkeypatch):
    """40000 images (fixed seed, so deterministic), counting the calls that
    apply an operation. Each statistic is checked within 5 binomial
    standard deviations; the operation and level histograms also by a
    chi-square test at the same tail probability (2.9e-7)."""
    n = 40000
    t = UniformAugment()
    applied = []

    def record(img, name, level, negative):
        applied[-1].append((name, level, negative))
        return img

    monkeypatch.setattr(t, 'apply_op', record)
    img = np.zeros((4, 4, 3), np.uint8)
    np.random.seed(0)
    for _ in range(n):
        applied.append([])
        t(dict(img=img))

    per_image = Counter(len(a) for a in applied)
    assert set(per_image) <= {0, 1, 2}
    # at least one of the two operations: 1 - 0.5 ** 2 = 0.75
    assert _within(per_image[1] + per_image[2], n, 0.75)
    assert _within(per_image[2], n, 0.25)
    calls = [op for a in applied for op in a]
    assert _within(len(calls), 2 * n, 0.5)  # each drawn op: prob 0.5

    ops = Counter(name for name, _, _ in calls)
    levels = Counter(level for _, level, _ in calls)
    assert set(ops) == OPS and set(levels) == set(range(31))
    for hist, cells, critical in ((ops, 14, 55.85), (levels, 31, 85.73)):
        # critical: scipy.stats.chi2.ppf(1 - 2.87e-7, cells - 1)
        expected = len(calls) / cells
        assert all(_within(c, len(calls), 1 / cells) for c in hist.values())
        chi2 = sum((c - expected) ** 2 / expected for c in hist.values())
        assert chi2 < critical, (hist, chi2)
    geometric = [
        neg for name, _, neg in calls if name[:2] in ('Ro', 'Sh', 'Tr')
    ]
    assert _within(sum(geometric), len(geometric), 0.5)


def test_transform_applies_the_drawn_operations():
    t = UniformAugment()
    rgb = _images()[0]
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    for seed in range(20):
        np.random.seed(seed)
        ops = t.random_ops()
        np.random.seed(seed)
        out = t(dict(img=bgr.copy()))['img']
        want = bgr
        for name, level, negative in ops:
            want = t.apply_op(want, name, level, negative)
        np.testing.assert_array_equal(out, want)
        assert out.shape == bgr.shape and out.dtype == np.uint8


@pytest.mark.parametrize(
    'kwargs, match',
    [
        (dict(num_ops=0), 'num_ops=0'),
        (dict(num_ops=1.5), 'num_ops=1.5'),
        (dict(prob=1.5), 'prob=1.5'),
        (dict(num_levels=1), 'num_levels=1'),
        (dict(pad_val=300), 'pad_val=300'),
    ],
)
def test_invalid_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UniformAugment(**kwargs)


def test_invalid_inputs_are_named():
    t = UniformAugment()
    with pytest.raises(KeyError, match="'Invert'"):
        t.parameter('Invert', 3)
    with pytest.raises(ValueError, match='level=31'):
        t.parameter('Rotate', 31)
    with pytest.raises(ValueError, match='float32'):
        t(dict(img=np.zeros((4, 4, 3), np.float32)))
