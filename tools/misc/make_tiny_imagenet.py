"""Write a tiny ImageNet in mmpretrain's layout, to try the ImageNet configs
(configs/mmpretrain/imagenet) without downloading ImageNet.

    python tools/misc/make_tiny_imagenet.py OUT_DIR [--classes 2]
        [--train-per-class 2] [--val-per-class 1] [--seed 0]

Layout (that of ``data/imagenet`` in mmpretrain's ImageNet configs)::

    OUT_DIR/train/n00000000/n00000000_0.JPEG ...
    OUT_DIR/val/ILSVRC2012_val_00000001.JPEG ...
    OUT_DIR/meta/train.txt    ("n00000000/n00000000_0.JPEG 0" per line)
    OUT_DIR/meta/val.txt      ("ILSVRC2012_val_00000001.JPEG 0" per line)

Images are RGB JPEGs of 160 to 320 pixels a side (random aspect ratio):
each class its own mean colour (:func:`class_colour`, a point of an evenly
spaced RGB grid, so that any number of classes up to 1000 are distinct)
with a gradient in a direction of its own, plus noise. Labels are 0 ..
classes - 1 of ImageNet's 1000. Deterministic for a given seed; needs only
numpy and Pillow. docs/method.md shows a two-iteration ST++ A2 run on it.
"""

import argparse
import os
import os.path as osp
from typing import List, Optional

import numpy as np
from PIL import Image

from mmst.utils import run_tool


def class_colour(label: int, classes: int) -> np.ndarray:
    """The mean RGB colour of class ``label`` of ``classes``: a point of
    an evenly spaced ``levels ** 3`` grid over 50 .. 205 (``levels`` the
    smallest with ``levels ** 3 >= classes``), so every class has its own,
    at least ``155 / (levels - 1)`` grey levels from any other in some
    channel (1000 classes: 17)."""
    levels = 1
    while levels**3 < classes:
        levels += 1
    digits = [(label // levels**c) % levels for c in range(3)]
    step = 155 / max(levels - 1, 1)
    return np.array([50 + step * d for d in digits])


def _image(rng: np.random.Generator, label: int, classes: int) -> Image.Image:
    """A class image: the class colour plus a linear gradient (+-42 grey
    levels at most) in a direction of its own (the golden angle times the
    label) and Gaussian noise (std 20)."""
    width, height = (int(v) for v in rng.integers(160, 321, size=2))
    yy, xx = np.mgrid[0:height, 0:width]
    angle = label * np.pi * (3 - np.sqrt(5))
    ramp = (xx / width - 0.5) * np.cos(angle) + (yy / height - 0.5) * (
        np.sin(angle)
    )
    rgb = class_colour(label, classes) + 60 * ramp[..., None]
    rgb = rgb + rng.normal(0, 20, (height, width, 3))
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))


def make_tiny_imagenet(
    out_dir: str,
    classes: int = 2,
    train_per_class: int = 2,
    val_per_class: int = 1,
    seed: int = 0,
) -> List[str]:
    """Write the data set; returns the paths of the two annotation files
    (``meta/train.txt``, ``meta/val.txt``)."""
    for key, value, low in (
        ('classes', classes, 1),
        ('train_per_class', train_per_class, 1),
        ('val_per_class', val_per_class, 1),
    ):
        if value < low:
            raise ValueError(f'{key}={value!r} is invalid; allowed: >= {low}')
    if classes > 1000:
        raise ValueError(
            f'classes={classes!r} is invalid; allowed: <= 1000 (ImageNet)'
        )
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(out_dir, 'meta'), exist_ok=True)
    os.makedirs(osp.join(out_dir, 'val'), exist_ok=True)
    train, val = [], []
    for label in range(classes):
        synset = f'n{label:08d}'
        os.makedirs(osp.join(out_dir, 'train', synset), exist_ok=True)
        for i in range(train_per_class):
            name = f'{synset}/{synset}_{i}.JPEG'
            _image(rng, label, classes).save(osp.join(out_dir, 'train', name))
            train.append(f'{name} {label}')
        for _ in range(val_per_class):
            name = f'ILSVRC2012_val_{len(val) + 1:08d}.JPEG'
            _image(rng, label, classes).save(osp.join(out_dir, 'val', name))
            val.append(f'{name} {label}')
    paths = []
    for split, lines in (('train', train), ('val', val)):
        path = osp.join(out_dir, 'meta', f'{split}.txt')
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        paths.append(path)
    return paths


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write a tiny ImageNet in mmpretrain's layout."
    )
    parser.add_argument('out_dir', help='output folder (the data_root)')
    parser.add_argument('--classes', type=int, default=2)
    parser.add_argument('--train-per-class', type=int, default=2)
    parser.add_argument('--val-per-class', type=int, default=1)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    paths = make_tiny_imagenet(
        args.out_dir,
        classes=args.classes,
        train_per_class=args.train_per_class,
        val_per_class=args.val_per_class,
        seed=args.seed,
    )
    print(
        f'wrote {args.classes * args.train_per_class} train and '
        f'{args.classes * args.val_per_class} val images to {args.out_dir} '
        f'({", ".join(paths)})'
    )
    return 0


if __name__ == '__main__':
    run_tool(main, 'make_tiny_imagenet')
