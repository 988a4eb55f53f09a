"""Tiny data sets in the real on-disk formats of COCO (instances, panoptic,
person keypoints) and Cityscapes, drawn from simple shapes, for tests and
for trying the downstream configs without downloading anything.

Everything is deterministic for a given seed and needs only numpy and
Pillow, so ``tools/misc/make_tiny_coco.py`` runs without the task
libraries.

COCO (:func:`make_tiny_coco`) writes the folder layout the mmdet / mmpose
configs expect under their ``data_root``::

    ROOT/train2017/000000000001.jpg ...
    ROOT/val2017/000000000101.jpg ...
    ROOT/annotations/instances_{train,val}2017.json       (boxes, polygons)
    ROOT/annotations/panoptic_{train,val}2017.json        (segments_info)
    ROOT/annotations/panoptic_{train,val}2017/*.png       (RGB-encoded ids)
    ROOT/annotations/person_keypoints_{train,val}2017.json

Each image has two "stuff" regions (sky above grass) and a few
non-overlapping "things": cars (rectangles) and persons (ellipses) with 17
keypoints inside their box. Category ids and names are COCO's, so the
datasets' own class lists (80 things, 133 panoptic classes) apply unchanged.

Cityscapes (:func:`make_tiny_cityscapes`) writes
``leftImg8bit/{train,val}/CITY/NAME_leftImg8bit.png`` and
``gtFine/{train,val}/CITY/NAME_gtFine_labelTrainIds.png`` (train ids 0-18,
255 ignored), the layout of mmseg's ``CityscapesDataset``.
"""

import json
import math
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

# COCO's 80 thing and 53 panoptic stuff categories (ids and names as in
# the real annotation files, in the order of the datasets' class lists:
# evaluators map class indices to these ids, so all must be present).
COCO_THINGS = (
    (1, 'person'), (2, 'bicycle'), (3, 'car'), (4, 'motorcycle'),
    (5, 'airplane'), (6, 'bus'), (7, 'train'), (8, 'truck'), (9, 'boat'),
    (10, 'traffic light'), (11, 'fire hydrant'), (13, 'stop sign'),
    (14, 'parking meter'), (15, 'bench'), (16, 'bird'), (17, 'cat'),
    (18, 'dog'), (19, 'horse'), (20, 'sheep'), (21, 'cow'),
    (22, 'elephant'), (23, 'bear'), (24, 'zebra'), (25, 'giraffe'),
    (27, 'backpack'), (28, 'umbrella'), (31, 'handbag'), (32, 'tie'),
    (33, 'suitcase'), (34, 'frisbee'), (35, 'skis'), (36, 'snowboard'),
    (37, 'sports ball'), (38, 'kite'), (39, 'baseball bat'),
    (40, 'baseball glove'), (41, 'skateboard'), (42, 'surfboard'),
    (43, 'tennis racket'), (44, 'bottle'), (46, 'wine glass'), (47, 'cup'),
    (48, 'fork'), (49, 'knife'), (50, 'spoon'), (51, 'bowl'),
    (52, 'banana'), (53, 'apple'), (54, 'sandwich'), (55, 'orange'),
    (56, 'broccoli'), (57, 'carrot'), (58, 'hot dog'), (59, 'pizza'),
    (60, 'donut'), (61, 'cake'), (62, 'chair'), (63, 'couch'),
    (64, 'potted plant'), (65, 'bed'), (67, 'dining table'), (70, 'toilet'),
    (72, 'tv'), (73, 'laptop'), (74, 'mouse'), (75, 'remote'),
    (76, 'keyboard'), (77, 'cell phone'), (78, 'microwave'), (79, 'oven'),
    (80, 'toaster'), (81, 'sink'), (82, 'refrigerator'), (84, 'book'),
    (85, 'clock'), (86, 'vase'), (87, 'scissors'), (88, 'teddy bear'),
    (89, 'hair drier'), (90, 'toothbrush'),
)  # fmt: skip
COCO_STUFF = (
    (92, 'banner'), (93, 'blanket'), (95, 'bridge'), (100, 'cardboard'),
    (107, 'counter'), (109, 'curtain'), (112, 'door-stuff'),
    (118, 'floor-wood'), (119, 'flower'), (122, 'fruit'), (125, 'gravel'),
    (128, 'house'), (130, 'light'), (133, 'mirror-stuff'), (138, 'net'),
    (141, 'pillow'), (144, 'platform'), (145, 'playingfield'),
    (147, 'railroad'), (148, 'river'), (149, 'road'), (151, 'roof'),
    (154, 'sand'), (155, 'sea'), (156, 'shelf'), (159, 'snow'),
    (161, 'stairs'), (166, 'tent'), (168, 'towel'), (171, 'wall-brick'),
    (175, 'wall-stone'), (176, 'wall-tile'), (177, 'wall-wood'),
    (178, 'water-other'), (180, 'window-blind'), (181, 'window-other'),
    (184, 'tree-merged'), (185, 'fence-merged'), (186, 'ceiling-merged'),
    (187, 'sky-other-merged'), (188, 'cabinet-merged'),
    (189, 'table-merged'), (190, 'floor-other-merged'),
    (191, 'pavement-merged'), (192, 'mountain-merged'),
    (193, 'grass-merged'), (194, 'dirt-merged'), (195, 'paper-merged'),
    (196, 'food-other-merged'), (197, 'building-other-merged'),
    (198, 'rock-merged'), (199, 'wall-other-merged'), (200, 'rug-merged'),
)  # fmt: skip


def _category(cat_id: int, name: str, isthing: int) -> dict:
    return dict(id=cat_id, name=name, supercategory=name, isthing=isthing)


# The categories the scenes draw.
PERSON = _category(1, 'person', 1)
CAR = _category(3, 'car', 1)
SKY = _category(187, 'sky-other-merged', 0)
GRASS = _category(193, 'grass-merged', 0)

KEYPOINT_NAMES = (
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear',
    'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow',
    'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee',
    'right_knee', 'left_ankle', 'right_ankle',
)  # fmt: skip
SKELETON = (
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13],
    [6, 7], [6, 8], [7, 9], [8, 10], [9, 11], [2, 3], [1, 2], [1, 3],
    [2, 4], [3, 5], [4, 6], [5, 7],
)  # fmt: skip
# Keypoints of a person as fractions (x, y) of its box: a stick figure.
_KEYPOINT_LAYOUT = (
    (0.50, 0.08), (0.45, 0.06), (0.55, 0.06), (0.40, 0.08), (0.60, 0.08),
    (0.30, 0.25), (0.70, 0.25), (0.20, 0.42), (0.80, 0.42), (0.15, 0.58),
    (0.85, 0.58), (0.38, 0.58), (0.62, 0.58), (0.36, 0.76), (0.64, 0.76),
    (0.34, 0.94), (0.66, 0.94),
)  # fmt: skip

_COLORS = {
    SKY['id']: (110, 160, 230),
    GRASS['id']: (60, 150, 60),
    CAR['id']: (200, 40, 40),
    PERSON['id']: (240, 200, 60),
}

# Cityscapes train ids used by the tiny scenes.
CITYSCAPES_ROAD, CITYSCAPES_BUILDING, CITYSCAPES_SKY = 0, 2, 10
CITYSCAPES_PERSON, CITYSCAPES_CAR = 11, 13
_CITYSCAPES_COLORS = {
    CITYSCAPES_ROAD: (128, 64, 128),
    CITYSCAPES_BUILDING: (70, 70, 70),
    CITYSCAPES_SKY: (70, 130, 180),
    CITYSCAPES_PERSON: (220, 20, 60),
    CITYSCAPES_CAR: (0, 0, 142),
    255: (0, 0, 0),
}

Box = Tuple[float, float, float, float]  # x, y, w, h


def _ellipse_polygon(box: Box, points: int = 16) -> List[float]:
    x, y, w, h = box
    cx, cy, rx, ry = x + w / 2, y + h / 2, w / 2, h / 2
    poly = []
    for i in range(points):
        t = 2 * math.pi * i / points
        poly += [cx + rx * math.cos(t), cy + ry * math.sin(t)]
    return [round(v, 2) for v in poly]


def _rect_polygon(box: Box) -> List[float]:
    x, y, w, h = box
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def _polygon_mask(
    poly: Sequence[float], width: int, height: int
) -> np.ndarray:
    canvas = Image.new('L', (width, height), 0)
    ImageDraw.Draw(canvas).polygon(
        [(poly[i], poly[i + 1]) for i in range(0, len(poly), 2)], fill=1
    )
    return np.asarray(canvas, dtype=bool)


def _place_boxes(
    rng: np.random.Generator, width: int, height: int, count: int
) -> List[Box]:
    """Non-overlapping boxes (at least 2 px apart) in the lower 3/4."""
    boxes: List[Box] = []
    for _ in range(count * 20):
        if len(boxes) == count:
            break
        w = int(rng.integers(width // 6, width // 3 + 1))
        h = int(rng.integers(height // 4, height // 2 + 1))
        x = int(rng.integers(1, width - w - 1))
        y = int(rng.integers(height // 4, height - h - 1))
        if all(
            x + w + 2 <= bx or bx + bw + 2 <= x or y + h + 2 <= by
            or by + bh + 2 <= y
            for bx, by, bw, bh in boxes
        ):  # fmt: skip
            boxes.append((float(x), float(y), float(w), float(h)))
    return boxes


def _noisy(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    noise = rng.normal(0, 6, image.shape)
    return np.clip(image.astype(np.float64) + noise, 0, 255).astype(np.uint8)


def _id_to_rgb(segment_id: int) -> Tuple[int, int, int]:
    return (segment_id % 256, segment_id // 256 % 256, segment_id // 65536)


def _scene(
    rng: np.random.Generator, width: int, height: int, objects: int
) -> Tuple[np.ndarray, np.ndarray, List[dict]]:
    """One COCO-style scene: image (H, W, 3), panoptic ids (H, W) and its
    segments (category, polygon, box, mask, keypoints)."""
    horizon = int(rng.integers(height // 3, height // 2 + 1))
    ids = np.zeros((height, width), dtype=np.int64)
    image = np.zeros((height, width, 3), dtype=np.uint8)
    segments = []
    for cat, rows in ((SKY, slice(0, horizon)), (GRASS, slice(horizon, None))):
        mask = np.zeros((height, width), dtype=bool)
        mask[rows] = True
        segments.append(dict(category=cat, mask=mask))
    boxes = _place_boxes(rng, width, height, objects)
    for i, box in enumerate(boxes):
        cat = PERSON if i % 2 == 0 else CAR
        poly = _ellipse_polygon(box) if cat is PERSON else _rect_polygon(box)
        mask = _polygon_mask(poly, width, height)
        if not mask.any():
            continue
        for seg in segments:  # things cover the stuff below them
            if not seg['category']['isthing']:
                seg['mask'] &= ~mask
        keypoints = None
        if cat is PERSON:
            x, y, w, h = box
            keypoints = []
            for fx, fy in _KEYPOINT_LAYOUT:
                keypoints += [round(x + fx * w, 2), round(y + fy * h, 2), 2]
        segments.append(
            dict(
                category=cat,
                mask=mask,
                polygon=poly,
                box=box,
                keypoints=keypoints,
            )
        )
    for index, seg in enumerate(segments, start=1):
        seg['id'] = index * 1000 + seg['category']['id']  # unique per image
        ids[seg['mask']] = seg['id']
        image[seg['mask']] = _COLORS[seg['category']['id']]
    return _noisy(rng, image), ids, segments


def _mask_box(mask: np.ndarray) -> List[float]:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    return [float(x0), float(y0), float(xs.max() - x0 + 1),
            float(ys.max() - y0 + 1)]  # fmt: skip


def make_tiny_coco(
    root: str,
    num_train: int = 4,
    num_val: int = 2,
    image_size: Tuple[int, int] = (128, 96),
    objects_per_image: int = 3,
    seed: int = 0,
) -> Dict[str, str]:
    """Write a tiny COCO data set (instances, panoptic, person keypoints).

    Args:
        root (str): Output folder (created; existing files are replaced).
        num_train (int): Images in ``train2017``. Defaults to 4.
        num_val (int): Images in ``val2017``. Defaults to 2.
        image_size (tuple): ``(width, height)`` of every image. Defaults to
            ``(128, 96)``.
        objects_per_image (int): Things per image (alternately person and
            car); fewer when they do not fit. Defaults to 3.
        seed (int): Seed of the scenes. Defaults to 0.

    Returns:
        dict: Paths of the written annotation files, keyed
        ``'{instances,panoptic,keypoints}_{train,val}'``.
    """
    width, height = image_size
    if min(width, height) < 32:
        raise ValueError(
            f'make_tiny_coco: image_size={image_size!r} is too small; '
            'allowed: both sides >= 32 (mmdet drops smaller images)'
        )
    rng = np.random.default_rng(seed)
    ann_dir = osp.join(root, 'annotations')
    os.makedirs(ann_dir, exist_ok=True)
    paths = {}
    next_image_id, next_ann_id = 1, 1
    for split, count in (('train', num_train), ('val', num_val)):
        img_dir = osp.join(root, f'{split}2017')
        pan_dir = osp.join(ann_dir, f'panoptic_{split}2017')
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(pan_dir, exist_ok=True)
        images, instances, panoptic, keypoints = [], [], [], []
        for _ in range(count):
            image_id = next_image_id
            next_image_id += 1
            name = f'{image_id:012d}'
            image, ids, segments = _scene(
                rng, width, height, objects_per_image
            )
            Image.fromarray(image).save(
                osp.join(img_dir, name + '.jpg'), quality=95
            )
            rgb = np.stack(_id_to_rgb(ids), axis=-1).astype(np.uint8)
            Image.fromarray(rgb).save(osp.join(pan_dir, name + '.png'))
            images.append(
                dict(
                    id=image_id,
                    file_name=name + '.jpg',
                    width=width,
                    height=height,
                )
            )
            segments_info = []
            for seg in segments:
                mask, cat = seg['mask'], seg['category']
                area = int(mask.sum())
                if area == 0:
                    continue
                segments_info.append(
                    dict(
                        id=seg['id'],
                        category_id=cat['id'],
                        iscrowd=0,
                        bbox=_mask_box(mask),
                        area=area,
                    )
                )
                if not cat['isthing']:
                    continue
                ann = dict(
                    id=next_ann_id,
                    image_id=image_id,
                    category_id=cat['id'],
                    bbox=_mask_box(mask),
                    area=float(area),
                    segmentation=[seg['polygon']],
                    iscrowd=0,
                )
                next_ann_id += 1
                instances.append(ann)
                if seg['keypoints'] is not None:
                    keypoints.append(
                        dict(
                            ann,
                            keypoints=seg['keypoints'],
                            num_keypoints=len(KEYPOINT_NAMES),
                        )
                    )
            panoptic.append(
                dict(
                    image_id=image_id,
                    file_name=name + '.png',
                    segments_info=segments_info,
                )
            )
        things = [dict(id=i, name=n, supercategory=n) for i, n in COCO_THINGS]
        panoptic_categories = [_category(i, n, 1) for i, n in COCO_THINGS]
        panoptic_categories += [_category(i, n, 0) for i, n in COCO_STUFF]
        person = dict(
            {k: v for k, v in PERSON.items() if k != 'isthing'},
            keypoints=list(KEYPOINT_NAMES),
            skeleton=[list(s) for s in SKELETON],
        )
        files = {
            f'instances_{split}': (
                f'instances_{split}2017.json',
                dict(images=images, annotations=instances, categories=things),
            ),
            f'panoptic_{split}': (
                f'panoptic_{split}2017.json',
                dict(
                    images=images,
                    annotations=panoptic,
                    categories=panoptic_categories,
                ),
            ),
            f'keypoints_{split}': (
                f'person_keypoints_{split}2017.json',
                dict(
                    images=images, annotations=keypoints, categories=[person]
                ),
            ),
        }
        for key, (file_name, content) in files.items():
            path = osp.join(ann_dir, file_name)
            with open(path, 'w') as f:
                json.dump(content, f)
            paths[key] = path
    return paths


def tiny_coco_cfg_options(
    root: str, image_size: Tuple[int, int] = (128, 96)
) -> List[str]:
    """``--cfg-options`` that point an mmdet COCO detection / instance
    segmentation config (``coco_detection.py`` / ``coco_instance.py``
    pipelines) at a tiny COCO from :func:`make_tiny_coco`: data roots and
    evaluator files, the images' own size instead of 1333x800, one image per
    GPU, no worker processes, one epoch, a log line per iteration.

    Args:
        root (str): The folder :func:`make_tiny_coco` wrote.
        image_size (tuple): Its ``(width, height)``. Defaults to
            ``(128, 96)``.

    Returns:
        list[str]: ``key=value`` items for ``tools/train.py`` /
        ``tools/test.py`` ``--cfg-options``.
    """
    root = osp.abspath(root).rstrip('/') + '/'
    ann = root + 'annotations/instances_val2017.json'
    scale = f'({image_size[0]},{image_size[1]})'
    options = []
    for split in ('train', 'val', 'test'):
        options += [
            f'{split}_dataloader.dataset.data_root={root}',
            f'{split}_dataloader.num_workers=0',
            f'{split}_dataloader.persistent_workers=False',
        ]
    options += [
        f'val_evaluator.ann_file={ann}',
        f'test_evaluator.ann_file={ann}',
        # Resize is the 3rd train / 2nd test transform of mmdet's pipelines
        f'train_dataloader.dataset.pipeline.2.scale={scale}',
        f'val_dataloader.dataset.pipeline.1.scale={scale}',
        f'test_dataloader.dataset.pipeline.1.scale={scale}',
        'train_dataloader.batch_size=1',
        'train_cfg.max_epochs=1',
        'default_hooks.logger.interval=1',
    ]
    return options


def make_tiny_cityscapes(
    root: str,
    num_train: int = 2,
    num_val: int = 2,
    image_size: Tuple[int, int] = (128, 64),
    city: str = 'tinytown',
    seed: int = 0,
) -> Dict[str, List[str]]:
    """Write a tiny Cityscapes data set (images and train-id label maps).

    Args:
        root (str): Output folder (created; existing files are replaced).
        num_train (int): Images in ``train``. Defaults to 2.
        num_val (int): Images in ``val``. Defaults to 2.
        image_size (tuple): ``(width, height)``. Defaults to ``(128, 64)``.
        city (str): The city sub-folder. Defaults to ``'tinytown'``.
        seed (int): Seed of the scenes. Defaults to 0.

    Returns:
        dict: The written label maps, keyed ``'train'`` and ``'val'``.
    """
    width, height = image_size
    rng = np.random.default_rng(seed)
    written: Dict[str, List[str]] = {}
    for split, count in (('train', num_train), ('val', num_val)):
        img_dir = osp.join(root, 'leftImg8bit', split, city)
        gt_dir = osp.join(root, 'gtFine', split, city)
        os.makedirs(img_dir, exist_ok=True)
        os.makedirs(gt_dir, exist_ok=True)
        written[split] = []
        for i in range(count):
            labels = np.full((height, width), CITYSCAPES_ROAD, np.uint8)
            horizon = int(rng.integers(height // 4, height // 2))
            labels[:horizon] = CITYSCAPES_SKY
            left = int(rng.integers(width // 4, width // 2))
            labels[horizon // 2 : horizon + height // 8, :left] = (
                CITYSCAPES_BUILDING
            )
            for j, box in enumerate(_place_boxes(rng, width, height, 3)):
                x, y, w, h = (int(v) for v in box)
                if j % 2:
                    labels[y : y + h, x : x + w] = CITYSCAPES_CAR
                else:
                    mask = _polygon_mask(_ellipse_polygon(box), width, height)
                    labels[mask] = CITYSCAPES_PERSON
            labels[-2:] = 255  # an ignored strip (ego vehicle)
            image = np.zeros((height, width, 3), np.uint8)
            for train_id, color in _CITYSCAPES_COLORS.items():
                image[labels == train_id] = color
            name = f'{city}_{i:06d}_000019'
            Image.fromarray(_noisy(rng, image)).save(
                osp.join(img_dir, name + '_leftImg8bit.png')
            )
            gt_path = osp.join(gt_dir, name + '_gtFine_labelTrainIds.png')
            Image.fromarray(labels).save(gt_path)
            written[split].append(gt_path)
    return written
