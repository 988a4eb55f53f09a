"""One ST* training step of the shipped configs on generated data, through
the configs' own data pipelines and data preprocessors.

The step must run the main network on the full batch, then each of the N
sub-networks with the depth and input size the seeded sampler gives for
that pass (ST++ space3; the frozen stage 1 of the detectors is never
shortened), and update the weights once.

Faster R-CNN (the headline config) runs at real size (ResNet-50, N=6);
the others run with a narrow ResNet-50 (same stages) and N=2. Mask R-CNN,
Panoptic FPN, Semantic FPN and SimpleBaseline2D also train through
``tools/train.py`` in ``test_train_test_tools.py``.
"""

import copy
from pathlib import Path
from typing import List, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmengine.runner import Runner

from .data import (
    FRAMEWORKS,
    data_root,
    point_at_data,
    shrink_model,
    tiny_config,
)

SPACE3 = [[3], [3, 4], [3, 4, 5, 6], [3]]


def _build(cfg: Config):
    import mmst  # noqa: F401
    from mmst.apis.launch import register_scope_modules
    from mmst.registry import MODELS

    register_scope_modules(cfg)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        torch.manual_seed(0)
        model = revert_sync_batchnorm(MODELS.build(cfg.model))
        model.init_weights()
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        batch = next(iter(loader))
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, batch, optim_wrapper


class PassRecorder:
    """Records, per backbone call, the input's shape and how many blocks
    of each stage computed something (skipped blocks return their input
    object)."""

    def __init__(self, model) -> None:
        self.passes: List[Tuple[tuple, List[int]]] = []
        backbone = model.architecture.backbone
        self.handles = [backbone.register_forward_pre_hook(self._start)]
        for s, stage in enumerate(model.elastic.stages):
            for block in stage:
                self.handles.append(
                    block.register_forward_hook(self._block_hook(s))
                )

    def _start(self, module, args) -> None:
        self.passes.append((tuple(args[0].shape), [0, 0, 0, 0]))

    def _block_hook(self, stage: int):
        def hook(module, args, output) -> None:
            if output is not args[0]:
                self.passes[-1][1][stage] += 1

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _check_st_step(model, batch, optim_wrapper) -> dict:
    """Run one ST step and check every pass against the sampler."""
    model.train()
    with torch.no_grad():
        full = model.data_preprocessor(batch, True)['inputs']
    shorter = min(full.shape[-2:])
    expected = [
        model.sample(i, shorter) for i in range(1, 1 + model.num_subnets)
    ]
    before = {
        n: p.detach().clone()
        for n, p in model.named_parameters()
        if p.requires_grad
    }
    recorder = PassRecorder(model)
    try:
        log = model.train_step(batch, optim_wrapper)
    finally:
        recorder.remove()

    stage_depths = model.space.stage_depths
    assert stage_depths == [3, 4, 6, 3]
    assert model.space.depth_choices == SPACE3
    assert len(recorder.passes) == 1 + model.num_subnets
    main_shape, main_depths = recorder.passes[0]
    assert main_shape == tuple(full.shape)
    assert main_depths == stage_depths
    for (shape, depths), (subnet, size) in zip(recorder.passes[1:], expected):
        assert depths == [len(s) for s in subnet]
        assert depths[0] == 3  # stage 1 full (frozen in the detectors)
        # the rescaled batch: shorter side ~size, padded to the divisor
        assert shape[:2] == tuple(full.shape[:2])
        assert min(shape[-2:]) >= size
        assert min(shape[-2:]) < size + 32
        assert max(shape[-2:]) <= max(full.shape[-2:])
    assert min(s for _, s in expected) < shorter  # some smaller input

    for key in ('loss', 'loss_main', 'loss_subnet'):
        assert torch.isfinite(torch.as_tensor(log[key])), (key, log)
    assert log['loss_subnet'] > 0
    changed = [
        n for n, p in model.named_parameters() if n in before
        and not torch.equal(p, before[n])
    ]  # fmt: skip
    assert any('.backbone.layer3.' in n for n in changed)
    assert any('.backbone.' not in n for n in changed)
    # the frozen stem and stage 1 of the detectors stay as they were
    frozen = [n for n in before if '.backbone.layer1.' in n]
    assert not any(n in changed for n in frozen)
    return log


@pytest.mark.parametrize('framework', ['cascade_rcnn', 'fcos', 'atss'])
def test_st_star_step_tiny(framework, tiny_coco, tiny_cityscapes):
    st_path, _, kind = FRAMEWORKS[framework]
    root = data_root(kind, tiny_coco, tiny_cityscapes)
    cfg = tiny_config(st_path, kind, root, num_subnets=2)
    warmup = framework == 'fcos'
    if warmup:  # the warm-up weight is the ST step's, for every task
        cfg.model.subnet_schedule = dict(warmup=1)
    model, batch, optim_wrapper = _build(cfg)
    frozen = model.architecture.backbone.frozen_stages
    assert frozen == 1
    if not warmup:
        _check_st_step(model, batch, optim_wrapper)
        return
    # iteration 0 in a hub of its own (cleared after): weight 1/2
    hub = MessageHub.get_instance('test_st_star_step_warmup')
    hub.update_info('iter', 0)
    try:
        log = _check_st_step(model, batch, optim_wrapper)
    finally:
        hub.update_info('iter', None)
    assert log['subnet_weight'] == 0.5
    total = float(log['loss_main']) + 0.5 * 2 * float(log['loss_subnet'])
    assert float(log['loss']) == pytest.approx(total)


def _boxes_at_the_border(batch) -> None:
    """Give every image ground-truth boxes outside it, starting at its
    border, straddling it, and one inside."""
    from mmdet.structures.bbox import HorizontalBoxes
    from mmengine.structures import InstanceData

    for sample in batch['data_samples']:
        h, w = sample.img_shape
        boxes = torch.tensor(
            [
                [w + 4, 10, w + 20, 30],  # outside, right
                [w, 12, w + 8, 40],  # starting at the right border
                [-10, 5, 0, h / 2],  # ending at the left border
                [w - 6, 20, w + 6, 44],  # straddling the right border
                [20, h - 6, 40, h + 6],  # straddling the bottom border
                [10, 10, 40, 40],  # inside
            ]
        ).float()
        sample.gt_instances = InstanceData(
            bboxes=HorizontalBoxes(boxes), labels=torch.arange(len(boxes))
        )


@pytest.mark.parametrize('framework', ['faster_rcnn', 'cascade_rcnn', 'fcos'])
def test_subnet_loss_finite_with_boxes_at_the_border(framework, tiny_coco):
    """Two-stage, cascade and single-stage heads: with boxes that scaling
    and clipping to a smaller input make empty, every sub-network's loss is
    finite like the main network's (the emptied boxes turned the RoI heads'
    box loss NaN), and so are the weights after the step."""
    st_path, _, kind = FRAMEWORKS[framework]
    cfg = tiny_config(st_path, kind, tiny_coco, num_subnets=2)
    model, batch, optim_wrapper = _build(cfg)
    _boxes_at_the_border(batch)
    model.train()
    with torch.no_grad():
        shorter = min(
            model.data_preprocessor(batch, True)['inputs'].shape[-2:]
        )
    sizes = [model.sample(i, shorter)[1] for i in (1, 2)]
    assert min(sizes) < shorter  # a smaller input: boxes get clipped
    log = model.train_step(batch, optim_wrapper)
    for key in ('loss', 'loss_main', 'loss_subnet'):
        assert torch.isfinite(torch.as_tensor(log[key])), (key, log)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize('packed', [True, False], ids=['shipped', 'peaks'])
def test_pose_step_uses_exact_keypoints_when_packed(packed, tiny_coco):
    """The SimpleBaseline2D ST* config as shipped packs the transformed
    keypoints: its sub-networks' targets come from them, without a
    warning; with the upstream packing (``pack_transformed=False``) mmst
    warns once that it falls back to the heatmap peaks."""
    import warnings

    st_path, _, kind = FRAMEWORKS['simple_baseline']
    cfg = tiny_config(st_path, kind, tiny_coco, num_subnets=2)
    pipeline = cfg.train_dataloader.dataset.pipeline
    assert pipeline[7].type == 'PackPoseInputs'
    assert pipeline[7].pack_transformed is True
    if not packed:
        pipeline[7].pack_transformed = False
    model, batch, optim_wrapper = _build(cfg)
    samples = batch['data_samples']
    assert all(
        ('transformed_keypoints' in s.gt_instances) == packed for s in samples
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        for _ in range(2):
            log = model.train_step(copy.deepcopy(batch), optim_wrapper)
    fallback = [w for w in caught if 'pack_transformed=True' in str(w.message)]
    assert len(fallback) == (0 if packed else 1)
    assert torch.isfinite(torch.as_tensor(log['loss_subnet']))


def test_headline_st_star_step_real_size(tiny_coco):
    """configs/faster_rcnn_r50_st.py as shipped (ResNet-50, N=6), only
    without the checkpoint download and on 128x96 images."""
    st_path, _, kind = FRAMEWORKS['faster_rcnn']
    cfg = Config.fromfile(st_path)
    assert cfg.model.num_subnets == 6
    cfg.model.architecture.backbone.init_cfg = None
    point_at_data(cfg, kind, Path(tiny_coco))
    cfg.train_dataloader.batch_size = 1
    model, batch, optim_wrapper = _build(cfg)
    assert model.architecture.backbone.base_channels == 64
    _check_st_step(model, batch, optim_wrapper)


def test_shrunk_configs_keep_the_st_settings():
    """The tiny configs of these tests change sizes, not the method."""
    for framework, (st_path, _, _) in FRAMEWORKS.items():
        shipped = Config.fromfile(st_path)
        tiny = shrink_model(copy.deepcopy(shipped))
        for key in ('type', 'space', 'input_resize', 'subnet_loss'):
            assert tiny.model[key] == shipped.model[key], (framework, key)
        arch, tiny_arch = shipped.model.architecture, tiny.model.architecture
        assert tiny_arch.type == arch.type
        assert tiny_arch.backbone.depth == arch.backbone.depth == 50
