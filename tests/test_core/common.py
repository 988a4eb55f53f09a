"""Tiny models and batches shared by the core tests."""

import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmengine.registry import init_default_scope
from mmpretrain.structures import DataSample

NUM_CLASSES = 10


def tiny_classifier_cfg(
    depth: int = 14, width: int = 8, norm: str = 'BN', in_channels: int = 1
) -> dict:
    """A CIFAR-style ResNet (3 stages of (depth-2)/6 basic blocks)."""
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            num_classes=NUM_CLASSES,
            mean=[72.9] * in_channels,
            std=[90.0] * in_channels,
        ),
        backbone=dict(
            type='mmst.ElasticResNet_CIFAR',
            depth=depth,
            in_channels=in_channels,
            stem_channels=width,
            base_channels=width,
            num_stages=3,
            strides=(1, 2, 2),
            dilations=(1, 1, 1),
            out_indices=(2,),
            norm_cfg=dict(type=norm, requires_grad=True)
            if norm != 'GN'
            else dict(type='GN', num_groups=2, requires_grad=True),
        ),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='LinearClsHead',
            num_classes=NUM_CLASSES,
            in_channels=width * 4,
            loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
        ),
    )


class GradientRecorder:
    """Mixin for a real optimizer wrapper: keeps the unscaled gradients it
    steps with as ``recorded`` (``id(param)`` -> gradient or None)."""

    def step(self, **kwargs):
        scaler = getattr(self, 'loss_scaler', None)  # AmpOptimWrapper's
        scale = scaler.get_scale() if scaler is not None else 1.0
        self.recorded = {
            id(p): None if p.grad is None else p.grad.detach().float() / scale
            for g in self.optimizer.param_groups
            for p in g['params']
        }
        super().step(**kwargs)


class RecordingOptimWrapper(GradientRecorder, OptimWrapper):
    pass


class RecordingAmpOptimWrapper(GradientRecorder, AmpOptimWrapper):
    pass


def st_cfg(**kwargs) -> dict:
    cfg = dict(
        type='mmst.StimulativeTraining',
        architecture=tiny_classifier_cfg(**kwargs.pop('arch', {})),
    )
    cfg.update(kwargs)
    return cfg


def build(cfg: dict):
    import mmst  # noqa: F401
    from mmst.registry import MODELS

    init_default_scope('mmpretrain')
    return MODELS.build(cfg)


def batch(n: int = 4, size: int = 28, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = [(torch.rand(1, size, size, generator=g) * 255) for _ in range(n)]
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=g)
    samples = [DataSample().set_gt_label(int(y)) for y in labels]
    return dict(inputs=inputs, data_samples=samples)


def make_folder_dataset(
    root, classes: int = 3, per_class: int = 6, size: int = 16, seed: int = 0
) -> str:
    """An ImageNet-style folder dataset (class sub-folders of PNG files),
    each class a different brightness pattern so that it is learnable."""
    import os

    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    for c in range(classes):
        os.makedirs(os.path.join(root, f'class{c}'), exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            img[:, c * size // classes : (c + 1) * size // classes] += 150
            cv2.imwrite(os.path.join(root, f'class{c}', f'{i}.png'), img)
    return str(root)


def runner_cfg(
    work_dir,
    data_root,
    model: dict,
    max_epochs: int = 2,
    batch_size: int = 6,
    val_cfg=None,
) -> dict:
    """A real mmpretrain training config over a folder dataset."""
    pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    loader = dict(
        batch_size=batch_size,
        num_workers=0,
        dataset=dict(
            type='CustomDataset', data_root=data_root, pipeline=pipeline
        ),
        sampler=dict(type='DefaultSampler', shuffle=True),
    )
    return dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['mmst'], allow_failed_imports=False),
        work_dir=str(work_dir),
        model=model,
        train_dataloader=loader,
        val_dataloader=dict(
            loader, sampler=dict(type='DefaultSampler', shuffle=False)
        ),
        val_evaluator=dict(type='Accuracy', topk=(1,)),
        val_cfg=val_cfg or dict(),
        train_cfg=dict(
            by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs
        ),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1),
        ),
        randomness=dict(seed=0),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING',
    )
