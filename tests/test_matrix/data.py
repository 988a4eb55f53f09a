"""The config matrix: every shipped config, its data kind, and the changes
that make it run on small generated data in seconds.

Classification configs run on generated folder data sets in ImageNet's
layout (``train/<class>/*.png``, ``val/<class>/*.png``; the CIFAR configs'
datasets become mmpretrain ``CustomDataset`` over such a folder), and the
Fashion-MNIST configs on the real files in ``data/fashion_mnist`` (CI
prepares them; missing files fail the tests). The downstream configs run
on the tiny COCO / Cityscapes of :mod:`tests.test_downstream.data`.
Models keep their structure (stages, blocks, heads); only widths and input
sizes shrink.
"""

from pathlib import Path
from typing import Dict, List, Optional

from mmengine.config import Config, ConfigDict

from mmst.testing.upstream import walk_dicts

from ..test_distributed.common import require_fashion_mnist
from ..test_downstream.data import REPO, tiny_config, tiny_schedule

CONFIG_ROOT = REPO / 'configs'

# Data kinds of the classification configs and the image sizes of their
# generated folders (ImageNet crops shrink from 224 to CLS_CROP).
CLS_KINDS = ('imagenet', 'imagenet_eval', 'cifar', 'fashion_mnist')
DOWNSTREAM_KINDS = ('coco', 'coco_panoptic', 'coco_keypoints', 'cityscapes')
# ResNet-50 downsamples 32x: 64 px crops keep 2x2 features in its last
# stage, so BN trains on a batch of one image per rank.
FOLDER_SIZES = {'imagenet': 80, 'cifar': 32}
CLS_CROP = 64
CLS_RESIZE = 72
# Training images of the folder data sets (2 iterations of batch 2).
TRAIN_IMAGES = 4

# Every config under configs/ (``_base_`` folders excluded) and its data
# kind. test_config_matrix.py checks that this list equals the folder, so
# a new config fails until it is listed here (and thereby trained).
CONFIG_KINDS: Dict[str, str] = {
    'faster_rcnn_r50_st.py': 'coco',
    'mmdet/atss_r50_st-backbone_1x_coco.py': 'coco',
    'mmdet/atss_r50_st-backbone_adamw-1x_coco.py': 'coco',
    'mmdet/atss_r50_st-star_1x_coco.py': 'coco',
    'mmdet/atss_r50_st-star_adamw-1x_coco.py': 'coco',
    'mmdet/cascade_rcnn_r50_st-backbone_1x_coco.py': 'coco',
    'mmdet/cascade_rcnn_r50_st-backbone_adamw-1x_coco.py': 'coco',
    'mmdet/cascade_rcnn_r50_st-star_1x_coco.py': 'coco',
    'mmdet/cascade_rcnn_r50_st-star_adamw-1x_coco.py': 'coco',
    'mmdet/faster_rcnn_r50_st-backbone_1x_coco.py': 'coco',
    'mmdet/faster_rcnn_r50_st-backbone_adamw-1x_coco.py': 'coco',
    'mmdet/faster_rcnn_r50_st-star_1x_coco.py': 'coco',
    'mmdet/fcos_r50_st-backbone_1x_coco.py': 'coco',
    'mmdet/fcos_r50_st-backbone_adamw-1x_coco.py': 'coco',
    'mmdet/fcos_r50_st-star_1x_coco.py': 'coco',
    'mmdet/fcos_r50_st-star_adamw-1x_coco.py': 'coco',
    'mmdet/mask_rcnn_r50_st-backbone_1x_coco.py': 'coco',
    'mmdet/mask_rcnn_r50_st-backbone_adamw-1x_coco.py': 'coco',
    'mmdet/mask_rcnn_r50_st-star_1x_coco.py': 'coco',
    'mmdet/mask_rcnn_r50_st-star_adamw-1x_coco.py': 'coco',
    'mmdet/panoptic_fpn_r50_st-backbone_1x_coco.py': 'coco_panoptic',
    'mmdet/panoptic_fpn_r50_st-backbone_adamw-1x_coco.py': 'coco_panoptic',
    'mmdet/panoptic_fpn_r50_st-star_1x_coco.py': 'coco_panoptic',
    'mmdet/panoptic_fpn_r50_st-star_adamw-1x_coco.py': 'coco_panoptic',
    'mmpose/td-hm_res50_st-backbone_8xb64-210e_coco-256x192.py': (
        'coco_keypoints'
    ),
    'mmpose/td-hm_res50_st-star_8xb64-210e_coco-256x192.py': (
        'coco_keypoints'
    ),
    'mmpretrain/cifar100/mobilenetv3_ct_cifar100.py': 'cifar',
    'mmpretrain/cifar100/mobilenetv3_st_cifar100.py': 'cifar',
    'mmpretrain/cifar100/resnet50_ct_cifar100.py': 'cifar',
    'mmpretrain/cifar100/resnet50_st_cifar100.py': 'cifar',
    'mmpretrain/fashion_mnist/convnext_ct_fmnist.py': 'fashion_mnist',
    'mmpretrain/fashion_mnist/convnext_stpp_fmnist.py': 'fashion_mnist',
    'mmpretrain/fashion_mnist/resnet20_ct_fmnist.py': 'fashion_mnist',
    'mmpretrain/fashion_mnist/resnet20_st_fmnist.py': 'fashion_mnist',
    'mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py': 'fashion_mnist',
    'mmpretrain/fashion_mnist/resnet20_stpp_ft_fmnist.py': 'fashion_mnist',
    'mmpretrain/fashion_mnist/swin_ct_fmnist.py': 'fashion_mnist',
    'mmpretrain/fashion_mnist/swin_stpp_fmnist.py': 'fashion_mnist',
    'mmpretrain/fashion_mnist/vit_ct_fmnist.py': 'fashion_mnist',
    'mmpretrain/fashion_mnist/vit_stpp_fmnist.py': 'fashion_mnist',
    'mmpretrain/imagenet/resnet101_st_in1k.py': 'imagenet',
    'mmpretrain/imagenet/resnet50_ct_in1k.py': 'imagenet',
    'mmpretrain/imagenet/resnet50_eval-256_in1k.py': 'imagenet_eval',
    'mmpretrain/imagenet/resnet50_st_in1k.py': 'imagenet',
    'mmpretrain/imagenet/resnet50_stpp-a1_in1k.py': 'imagenet',
    'mmpretrain/imagenet/resnet50_stpp-a2_in1k.py': 'imagenet',
    'mmpretrain/imagenet/resnet50_stpp_eval_in1k.py': 'imagenet_eval',
    'mmpretrain/imagenet/convnext-t_stpp_in1k.py': 'imagenet',
    'mmpretrain/imagenet/swin-t_stpp_in1k.py': 'imagenet',
    'mmpretrain/imagenet/vit-b_st_in1k.py': 'imagenet',
    'mmseg/fpn_r50_st-backbone_4xb2-80k_cityscapes-512x1024.py': (
        'cityscapes'
    ),
    'mmseg/fpn_r50_st-backbone_adamw-4xb2-80k_cityscapes-512x1024.py': (
        'cityscapes'
    ),
    'mmseg/fpn_r50_st-star_4xb2-80k_cityscapes-512x1024.py': 'cityscapes',
    'mmseg/fpn_r50_st-star_adamw-4xb2-80k_cityscapes-512x1024.py': (
        'cityscapes'
    ),
}

# Per library, one config of each model kind it ships, for the torchrun
# cells: plain model (CT / R50-ST), ST / ST++ (classification), ST*
# (downstream).
DIST_CELLS: Dict[str, str] = {
    'mmpretrain-plain': 'mmpretrain/imagenet/resnet50_ct_in1k.py',
    'mmpretrain-st': 'mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py',
    'mmdet-plain': 'mmdet/faster_rcnn_r50_st-backbone_1x_coco.py',
    'mmdet-st-star': 'faster_rcnn_r50_st.py',
    'mmseg-plain': 'mmseg/fpn_r50_st-backbone_4xb2-80k_cityscapes-512x1024.py',
    'mmseg-st-star': 'mmseg/fpn_r50_st-star_4xb2-80k_cityscapes-512x1024.py',
    'mmpose-plain': (
        'mmpose/td-hm_res50_st-backbone_8xb64-210e_coco-256x192.py'
    ),
    'mmpose-st-star': 'mmpose/td-hm_res50_st-star_8xb64-210e_coco-256x192.py',
}


def discover_configs() -> List[str]:
    """Every config under ``configs/`` outside ``_base_`` folders, as paths
    relative to ``configs/``."""
    return sorted(
        str(p.relative_to(CONFIG_ROOT))
        for p in CONFIG_ROOT.rglob('*.py')
        if '_base_' not in p.relative_to(CONFIG_ROOT).parts
    )


def library(rel: str) -> str:
    """The task library of a config (its ``default_scope``'s package)."""
    first = rel.split('/')[0]
    return first if first.startswith('mm') else 'mmdet'


def is_eval_only(kind: str) -> bool:
    return kind == 'imagenet_eval'


# ---------------------------------------------------------------- data ---


def make_folder_dataset(root: Path, size: int, seed: int = 0) -> Path:
    """A data set in ImageNet's layout (mmpretrain ``ImageNet``): 2
    classes, ``train/class<c>/*.png`` (:data:`TRAIN_IMAGES` images) and
    ``val/class<c>/*.png`` (2), ``size`` px, and the annotation lists
    ``meta/{train,val}.txt`` (``class<c>/<i>.png <c>``; with them the
    dataset does not require 1000 class folders). Each class is a
    different bright band, so labels mean something."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    (root / 'meta').mkdir(parents=True, exist_ok=True)
    counts = {'train': TRAIN_IMAGES // 2, 'val': 1}
    for split, per_class in counts.items():
        lines = []
        for c in range(2):
            folder = root / split / f'class{c}'
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
                img[:, c * size // 2 : (c + 1) * size // 2] += 150
                cv2.imwrite(str(folder / f'{i}.png'), img)
                lines.append(f'class{c}/{i}.png {c}\n')
        (root / 'meta' / f'{split}.txt').write_text(''.join(lines))
    return root


# ------------------------------------------------------------- configs ---


def _loaders(cfg: Config) -> List[ConfigDict]:
    return [
        cfg[k]
        for k in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        if cfg.get(k) is not None
    ]


def _architecture(cfg: Config) -> ConfigDict:
    model = cfg.model
    return model.architecture if 'architecture' in model else model


def shrink_classifier(cfg: Config, width: int = 16) -> Config:
    """Narrow ResNets (same stages, ``width`` base channels) and a tiny
    ViT (12 layers of 32 channels on 64 px); MobileNetV3-Small and the
    Fashion-MNIST ResNet-20 are small already."""
    arch = _architecture(cfg)
    backbone = arch.backbone
    backbone.pop('init_cfg', None)
    if backbone.type in ('ResNet', 'ResNet_CIFAR', 'ResNetV1c'):
        backbone.base_channels = backbone.stem_channels = width
        arch.head.in_channels = width * 4 * 8
    elif backbone.type == 'VisionTransformer':
        backbone.arch = dict(
            embed_dims=32, num_layers=12, num_heads=2, feedforward_channels=64
        )
        backbone.img_size = CLS_CROP
        arch.head.in_channels = 32
    return cfg


def _folder_pipeline(pipeline: list) -> list:
    """A classification pipeline at :data:`CLS_CROP` px."""
    for t in pipeline:
        if t['type'] == 'RandomResizedCrop':
            t['scale'] = CLS_CROP
        elif t['type'] == 'ResizeEdge':
            t['scale'] = CLS_RESIZE
        elif t['type'] == 'CenterCrop':
            t['crop_size'] = CLS_CROP
    return pipeline


def point_classifier_at_data(cfg: Config, kind: str, root: Path) -> Config:
    """Point a classification config at its generated data (``imagenet``,
    ``imagenet_eval``, ``cifar``: folder data sets; ``fashion_mnist``: the
    prepared files, 4 training and 4 test images)."""
    for loader in _loaders(cfg):
        loader.num_workers = 0
        loader.persistent_workers = False
        loader.batch_size = 2
        dataset = loader.dataset
        if kind == 'fashion_mnist':
            dataset.data_root = str(root)
            dataset.indices = TRAIN_IMAGES
        elif kind == 'cifar':
            split = {'train': 'train', 'test': 'val'}[dataset.split]
            pipeline = dataset.pipeline
            if pipeline[0]['type'] != 'LoadImageFromFile':
                pipeline = [dict(type='LoadImageFromFile'), *pipeline]
            loader.dataset = ConfigDict(
                type='CustomDataset',
                data_root=str(root),
                data_prefix=split,
                pipeline=pipeline,
            )
        else:
            dataset.data_root = str(root)
            _folder_pipeline(dataset.pipeline)
    val_cfg = cfg.get('val_cfg') or {}
    if 'bn_recal_images' in val_cfg:
        val_cfg.bn_recal_images = TRAIN_IMAGES
    return cfg


def matrix_config(
    rel: str,
    roots: Dict[str, Path],
    num_subnets: Optional[int] = 1,
) -> Config:
    """The shipped config ``rel`` (relative to ``configs/``) shrunk to run
    on the generated data of its kind (``roots``: kind -> folder): 2
    training iterations of batch 2, a checkpoint at the end.

    Args:
        rel (str): The config, relative to ``configs/``.
        roots (dict): Data folder of each kind.
        num_subnets (int, optional): Overrides the ST model's N; None
            keeps the config's.

    Returns:
        Config: The shrunk config.
    """
    kind = CONFIG_KINDS[rel]
    path = str(CONFIG_ROOT / rel)
    if kind in DOWNSTREAM_KINDS:
        cfg = tiny_config(path, kind, roots[kind], num_subnets=num_subnets)
        if kind == 'coco_keypoints':  # one sample per person: keep 4
            cfg.train_dataloader.dataset.indices = TRAIN_IMAGES
    else:
        if kind == 'fashion_mnist':  # CI prepares it: fail, do not skip
            require_fashion_mnist()
        cfg = Config.fromfile(path)
        shrink_classifier(cfg)
        data_kind = 'imagenet' if kind == 'imagenet_eval' else kind
        point_classifier_at_data(cfg, kind, roots[data_kind])
        tiny_schedule(cfg)
        if num_subnets is not None and 'architecture' in cfg.model:
            cfg.model.num_subnets = num_subnets
    # The learning rates are those of batches of 16-512: scaled to the
    # batch of 2 by the configs' own auto_scale_lr (ImageNet's lr 0.2 on 2
    # images diverges in one step).
    if cfg.get('auto_scale_lr'):
        cfg.auto_scale_lr.enable = True
    return cfg


def cpu_norms(cfg: Config) -> Config:
    """SyncBN -> BN: torch's SyncBatchNorm refuses CPU tensors, so a CPU
    multi-process run needs plain BN (docs/distributed.md)."""
    for d in walk_dicts(cfg.model):
        if d.get('type') == 'SyncBN':
            d['type'] = 'BN'
    return cfg
