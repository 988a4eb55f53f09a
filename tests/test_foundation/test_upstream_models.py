"""The task libraries' own models build from their shipped configs and run
``loss`` and ``predict`` on the CPU.

Models are real size (ResNet-50 backbones) but nothing is downloaded:
``init_cfg`` / ``pretrained`` are cleared and weights stay randomly
initialised. Inputs are small random images, batched by each model's own
data preprocessor, with the data samples its heads expect.
"""

import math
from pathlib import Path
from typing import List

import numpy as np
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData, PixelData

from tests.tolerance import assert_within, gamma, sum_bound


def _upstream_config(spec: str, tmp_path: Path) -> Config:
    """Load a config shipped with an installed library.

    ``Config.fromfile`` resolves ``'package::path'`` only inside ``_base_``
    (which is how downstream configs, mmst's included, inherit them), so the
    config is loaded through a one-line child config.

    Args:
        spec (str): ``'package::path'``, e.g.
            ``'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'``.
        tmp_path (Path): A folder for the child config.

    Returns:
        Config: The library's config.
    """
    child = tmp_path / 'upstream.py'
    child.write_text(f'_base_ = [{spec!r}]\n')
    return Config.fromfile(str(child))


def _build(scope: str, cfg_model: Config) -> torch.nn.Module:
    """Build ``cfg_model`` from the ``scope`` library's MODELS registry with
    that library's modules registered and its scope as the default one.

    Args:
        scope (str): ``'mmdet'``, ``'mmseg'``, ``'mmpretrain'`` or
            ``'mmpose'``.
        cfg_model (Config): The ``model`` field of a config.

    Returns:
        torch.nn.Module: The model, on the CPU, with SyncBN reverted to BN
        as MMEngine's Runner does when it is not distributed.
    """
    import importlib

    utils = importlib.import_module(f'{scope}.utils')
    utils.register_all_modules(init_default_scope=False)
    registry = importlib.import_module(f'{scope}.registry')
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.MODELS.build(cfg_model)
    return revert_sync_batchnorm(model)


def _check_loss(model: torch.nn.Module, data: dict) -> dict:
    """Run the ``loss`` mode and check the losses.

    There is no backward pass (it would double the run time of these
    real-size models on the CPU); the total loss must be attached to the
    autograd graph instead.

    Args:
        model (torch.nn.Module): An MMEngine ``BaseModel``.
        data (dict): ``inputs`` and ``data_samples`` before preprocessing.

    Returns:
        dict: The log variables from ``parse_losses``.
    """
    model.train()
    batch = model.data_preprocessor(data, training=True)
    losses = model(**batch, mode='loss')
    assert isinstance(losses, dict) and losses
    loss, log_vars = model.parse_losses(losses)
    assert loss.ndim == 0, loss.shape
    assert torch.isfinite(loss), log_vars
    assert loss.item() > 0, log_vars
    for key, value in log_vars.items():
        assert math.isfinite(value), (key, value)

    assert loss.requires_grad and loss.grad_fn is not None
    return log_vars


def _predict(model: torch.nn.Module, data: dict) -> list:
    """Run the ``predict`` mode in eval mode without gradients.

    Args:
        model (torch.nn.Module): An MMEngine ``BaseModel``.
        data (dict): ``inputs`` and ``data_samples`` before preprocessing.

    Returns:
        list: The data samples with predictions.
    """
    model.eval()
    with torch.no_grad():
        batch = model.data_preprocessor(data, training=False)
        results = model(**batch, mode='predict')
    assert isinstance(results, list)
    assert len(results) == len(data['inputs'])
    return results


def _rand_images(
    num: int, height: int, width: int, seed: int
) -> List[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, (3, height, width), generator=gen).to(
            torch.uint8
        )
        for _ in range(num)
    ]


def _rand_xyxy(
    rng: np.random.RandomState, num: int, width: float, height: float
) -> np.ndarray:
    x1 = rng.uniform(0, width * 0.6, num)
    y1 = rng.uniform(0, height * 0.6, num)
    x2 = np.minimum(x1 + rng.uniform(width * 0.15, width * 0.4, num), width)
    y2 = np.minimum(y1 + rng.uniform(height * 0.15, height * 0.4, num), height)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)


def test_mmdet_faster_rcnn(tmp_path):
    from mmdet.structures import DetDataSample

    cfg = _upstream_config(
        'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py', tmp_path
    )
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = _build('mmdet', cfg.model)
    num_classes = cfg.model.roi_head.bbox_head.num_classes

    rng = np.random.RandomState(0)
    height, width = 192, 256
    samples = []
    for idx in range(2):
        sample = DetDataSample(
            metainfo=dict(
                img_id=idx,
                img_shape=(height, width),
                ori_shape=(height, width),
                scale_factor=(1.0, 1.0),
            )
        )
        sample.gt_instances = InstanceData(
            bboxes=torch.from_numpy(_rand_xyxy(rng, 3, width, height)),
            labels=torch.from_numpy(rng.randint(0, num_classes, 3)),
        )
        samples.append(sample)
    data = dict(
        inputs=_rand_images(2, height, width, seed=0), data_samples=samples
    )

    log_vars = _check_loss(model, data)
    assert {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'} <= set(
        log_vars
    )

    results = _predict(model, data)
    for result in results:
        assert isinstance(result, DetDataSample)
        pred = result.pred_instances
        num = len(pred)
        assert num <= cfg.model.test_cfg.rcnn.max_per_img
        assert pred.bboxes.shape == (num, 4)
        assert pred.scores.shape == (num,)
        assert pred.labels.shape == (num,)
        if num:
            assert pred.labels.min() >= 0
            assert pred.labels.max() < num_classes
            assert ((pred.scores >= 0) & (pred.scores <= 1)).all()
            # rescaled to the original image and clipped to it
            assert (pred.bboxes[:, 2:] >= pred.bboxes[:, :2]).all()
            assert pred.bboxes[:, 0::2].max() <= width
            assert pred.bboxes[:, 1::2].max() <= height


def test_mmseg_sem_fpn(tmp_path):
    from mmseg.structures import SegDataSample

    cfg = _upstream_config(
        'mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py', tmp_path
    )
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    # Train-time padding target: the config's 512x1024 crop is shrunk to
    # keep the CPU forward/backward short; the model itself is unchanged.
    height, width = 128, 256
    cfg.model.data_preprocessor.size = (height, width)
    torch.manual_seed(0)
    model = _build('mmseg', cfg.model)
    assert not any(
        isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules()
    )
    num_classes = cfg.model.decode_head.num_classes

    gen = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(2):
        sample = SegDataSample(
            metainfo=dict(img_shape=(height, width), ori_shape=(height, width))
        )
        seg = torch.randint(0, num_classes, (1, height, width), generator=gen)
        seg[:, :8] = 255  # the ignore index
        sample.gt_sem_seg = PixelData(data=seg)
        samples.append(sample)
    data = dict(
        inputs=_rand_images(2, height, width, seed=1), data_samples=samples
    )

    log_vars = _check_loss(model, data)
    assert 'decode.loss_ce' in log_vars
    assert 0 <= log_vars['decode.acc_seg'] <= 100

    results = _predict(model, data)
    for result in results:
        assert isinstance(result, SegDataSample)
        pred = result.pred_sem_seg.data
        assert pred.shape == (1, height, width)
        assert pred.min() >= 0 and pred.max() < num_classes
        logits = result.seg_logits.data
        assert logits.shape == (num_classes, height, width)
        assert torch.equal(logits.argmax(dim=0, keepdim=True), pred)


def test_mmpretrain_resnet50(tmp_path):
    from mmpretrain.structures import DataSample

    cfg = _upstream_config(
        'mmpretrain::resnet/resnet50_8xb32_in1k.py', tmp_path
    )
    model_cfg = cfg.model
    # what MMEngine's Runner does with a top-level data_preprocessor
    model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
    model_cfg.backbone.init_cfg = None
    torch.manual_seed(0)
    model = _build('mmpretrain', model_cfg)
    num_classes = model_cfg.head.num_classes

    samples = [
        DataSample(metainfo=dict(img_shape=(224, 224))).set_gt_label(label)
        for label in (3, 999)
    ]
    data = dict(inputs=_rand_images(2, 224, 224, seed=2), data_samples=samples)

    log_vars = _check_loss(model, data)
    assert 'loss' in log_vars
    # an untrained 1000-way classifier: cross-entropy close to ln(1000)
    assert 2.0 < log_vars['loss'] < 20.0

    results = _predict(model, data)
    for result, sample in zip(results, samples):
        assert isinstance(result, DataSample)
        assert result.pred_score.shape == (num_classes,)
        # Softmax scores sum to 1 up to float32 rounding: two sums of n
        # positive terms (the softmax's normaliser and this check), gamma_{n-1}
        # times their sum each, and two roundings per score (1 / sum, times).
        scores = result.pred_score
        total = scores.double().sum()
        tol = 2 * sum_bound(scores.numel(), total) + gamma(2) * total
        assert_within(scores.sum(), torch.tensor(1.0), tol)
        assert result.pred_label.shape == (1,)
        assert result.pred_label.item() == result.pred_score.argmax().item()
        assert torch.equal(result.gt_label, sample.gt_label)


def test_mmpose_topdown_heatmap(tmp_path):
    from mmpose.registry import KEYPOINT_CODECS
    from mmpose.structures import PoseDataSample
    from mmpose.structures.bbox import bbox_xyxy2cs

    cfg = _upstream_config(
        'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
        'td-hm_res50_8xb64-210e_coco-256x192.py',
        tmp_path,
    )
    cfg.model.backbone.init_cfg = None
    assert cfg.model.test_cfg.flip_test  # exercises the flip path
    torch.manual_seed(0)
    model = _build('mmpose', cfg.model)
    codec = KEYPOINT_CODECS.build(cfg.codec)
    num_keypoints = cfg.model.head.out_channels
    input_w, input_h = cfg.codec.input_size
    heatmap_w, heatmap_h = cfg.codec.heatmap_size
    # COCO's left/right keypoint pairs
    flip_indices = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]

    rng = np.random.RandomState(3)
    samples = []
    for idx in range(2):
        # a top-down input: one person crop already warped to input_size
        bboxes = np.array([[0, 0, input_w, input_h]], dtype=np.float32)
        centers, scales = bbox_xyxy2cs(bboxes, padding=1.0)
        keypoints = rng.uniform(
            [8, 8], [input_w - 8, input_h - 8], (1, num_keypoints, 2)
        ).astype(np.float32)
        visible = np.ones((1, num_keypoints), dtype=np.float32)
        visible[0, -2:] = 0  # two unlabelled keypoints
        encoded = codec.encode(keypoints, visible)

        sample = PoseDataSample(
            metainfo=dict(
                id=idx,
                img_id=idx,
                img_shape=(input_h, input_w),
                ori_shape=(input_h, input_w),
                input_size=(input_w, input_h),
                input_center=centers,
                input_scale=scales,
                flip_indices=flip_indices,
            )
        )
        sample.gt_instances = InstanceData(
            bboxes=bboxes,
            bbox_centers=centers,
            bbox_scales=scales,
            bbox_scores=np.ones(1, dtype=np.float32),
            keypoints=keypoints,
            keypoints_visible=visible,
        )
        sample.gt_instance_labels = InstanceData(
            keypoint_weights=torch.from_numpy(encoded['keypoint_weights'])
        )
        sample.gt_fields = PixelData(
            heatmaps=torch.from_numpy(encoded['heatmaps'])
        )
        assert sample.gt_fields.heatmaps.shape == (
            num_keypoints,
            heatmap_h,
            heatmap_w,
        )
        samples.append(sample)
    data = dict(
        inputs=_rand_images(2, input_h, input_w, seed=3), data_samples=samples
    )

    log_vars = _check_loss(model, data)
    assert 'loss_kpt' in log_vars
    assert 0 <= log_vars['acc_pose'] <= 1

    results = _predict(model, data)
    for result in results:
        assert isinstance(result, PoseDataSample)
        pred = result.pred_instances
        assert pred.keypoints.shape == (1, num_keypoints, 2)
        assert pred.keypoint_scores.shape == (1, num_keypoints)
        assert np.isfinite(pred.keypoints).all()
        # decoded from the heatmap grid back into the image (the crop is
        # the whole image here), within one heatmap cell of its border
        cell = input_w / heatmap_w
        assert (pred.keypoints >= -cell).all()
        assert (pred.keypoints[..., 0] <= input_w + cell).all()
        assert (pred.keypoints[..., 1] <= input_h + cell).all()
        assert np.isfinite(pred.keypoint_scores).all()
