"""Configs of the BN re-estimation tests: the core tests' tiny ResNet and
folder dataset, with a random flip in training (so that re-estimation
that consumed training's random numbers would change training) and
optionally MMEngine's InfiniteSampler with an iteration-based loop (as
every mmseg config)."""

import copy

from mmengine.config import Config

from tests.test_core.common import runner_cfg, st_cfg

TRAIN_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
VAL_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def st_model(**kwargs) -> dict:
    """A tiny ST++ model (2 stages-deep ResNet, 3 stages x 2 blocks)."""
    return st_cfg(
        num_subnets=2,
        logit_norm='layernorm',
        input_resize=dict(ratio_range=(0.43, 1.0)),
        arch=dict(in_channels=3),
        **kwargs,
    )


def engine_cfg(
    work_dir,
    data_root,
    model: dict,
    val_cfg=None,
    iter_based: bool = False,
    max_iters: int = 4,
    interval: int = 2,
    max_epochs: int = 1,
    log_level: str = 'WARNING',
) -> Config:
    """A training config over the folder dataset (18 images, batches of
    6). ``iter_based``: ``max_iters`` iterations with an InfiniteSampler,
    validation and checkpoints every ``interval`` iterations; else
    ``max_epochs`` epochs, both every epoch."""
    cfg = runner_cfg(
        work_dir, data_root, model, max_epochs=max_epochs, val_cfg=val_cfg
    )
    cfg['train_dataloader']['dataset']['pipeline'] = TRAIN_PIPELINE
    cfg['val_dataloader'] = copy.deepcopy(cfg['val_dataloader'])
    cfg['val_dataloader']['dataset']['pipeline'] = VAL_PIPELINE
    cfg['train_cfg'] = dict(
        by_epoch=True, max_epochs=max_epochs, val_interval=1
    )
    if iter_based:
        cfg['train_dataloader']['sampler'] = dict(
            type='InfiniteSampler', shuffle=True
        )
        cfg['train_cfg'] = dict(
            by_epoch=False, max_iters=max_iters, val_interval=interval
        )
        cfg['default_hooks']['checkpoint'] = dict(
            type='CheckpointHook', by_epoch=False, interval=interval
        )
        cfg['log_processor'] = dict(by_epoch=False)
    cfg['log_level'] = log_level
    return Config(cfg)
