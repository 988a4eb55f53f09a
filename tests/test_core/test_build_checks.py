"""What StimulativeTraining refuses or reads differently at build time:
frozen blocks never skipped, a space that would only
repeat the main pass, and heads whose loss the ST passes would bypass."""

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.models import LinearClsHead

from mmst.registry import MODELS

from .common import NUM_CLASSES, batch, build, st_cfg, tiny_classifier_cfg


def tiny_vit_classifier(**backbone) -> dict:
    return dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            num_classes=NUM_CLASSES,
            mean=[72.9],
            std=[90.0],
        ),
        backbone=dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=16,
                num_layers=4,
                num_heads=2,
                feedforward_channels=32,
            ),
            img_size=28,
            patch_size=7,
            in_channels=1,
            **backbone,
        ),
        head=dict(
            type='VisionTransformerClsHead',
            num_classes=NUM_CLASSES,
            in_channels=16,
        ),
    )


def test_vit_frozen_layers_are_kept_not_the_whole_stage():
    """A ViT's ``frozen_stages`` counts encoder layers, which are blocks of
    mmst's one stage: the frozen layers are always kept, the rest of the
    depths stay (the space collapsed to the full network once). More
    backbones: tests/test_subnet/test_backbone_traps.py."""
    model = build(
        dict(
            type='mmst.StimulativeTraining',
            architecture=tiny_vit_classifier(frozen_stages=2),
            num_subnets=2,
        )
    )
    assert model.space.depth_choices == [[2, 3, 4]]
    assert len(model.space) == 3


def test_resnet_frozen_stages_stay_full():
    """ResNet ``frozen_stages=k`` freezes mmst's first k stages: they stay
    full in every sampled sub-network."""
    arch = tiny_classifier_cfg(depth=20)
    arch['backbone']['frozen_stages'] = 1
    model = build(dict(st_cfg(num_subnets=1), architecture=arch))
    assert model.space.depth_choices == [[3], [1, 2, 3], [1, 2, 3]]


@pytest.mark.parametrize(
    'frozen, depths',
    [(3, 'default'), (-1, [[2], [2], [2]])],
    ids=['all-stages-frozen', 'explicit-full'],
)
def test_space_of_only_the_full_network_is_an_error(frozen, depths):
    arch = tiny_classifier_cfg(depth=14)
    arch['backbone']['frozen_stages'] = frozen
    cfg = dict(
        st_cfg(num_subnets=2, space=dict(depths=depths)), architecture=arch
    )
    with pytest.raises(ValueError, match=r'space\.depths=.*one sub-network'):
        build(cfg)
    # conventional training through the same code is fine
    build(dict(cfg, num_subnets=0))


@pytest.mark.parametrize(
    'head, why',
    [
        (
            dict(type='ArcFaceClsHead', num_classes=NUM_CLASSES),
            'overrides loss',
        ),
        (
            dict(type='MultiLabelLinearClsHead', num_classes=NUM_CLASSES),
            'not an mmpretrain ClsHead',
        ),
    ],
    ids=['margin-head', 'multi-label-head'],
)
def test_heads_mmst_cannot_drive_are_refused(head, why):
    arch = tiny_classifier_cfg()
    arch['head'] = dict(head, in_channels=32)
    with pytest.raises(TypeError, match=f'{head["type"]}.*{why}'):
        build(dict(st_cfg(), architecture=arch))


@MODELS.register_module(force=True)
class _TupleLogitsHead(LinearClsHead):
    """A head that keeps ClsHead's loss but returns a tuple (as
    distillation heads do)."""

    def forward(self, feats):
        logits = super().forward(feats)
        return logits, logits


def test_head_returning_a_tuple_is_a_clear_error():
    arch = tiny_classifier_cfg()
    arch['head'] = dict(
        type='mmst._TupleLogitsHead', num_classes=NUM_CLASSES, in_channels=32
    )
    model = build(dict(st_cfg(), architecture=arch)).train()
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    with pytest.raises(TypeError, match='returned tuple.*one tensor'):
        model.train_step(batch(), optim)


def test_distill_with_task_losses_is_an_error():
    """``distill`` configures the KL loss; with ``subnet_loss='task'`` it
    would be silently ignored."""
    with pytest.raises(ValueError, match=r"distill=.*subnet_loss='task'"):
        build(st_cfg(subnet_loss='task', distill=dict(temperature=2.0)))


@pytest.mark.parametrize(
    'kwargs, expected',
    [
        (dict(), 'layernorm'),  # ST++'s KL-: sub-networks learn directions
        (dict(num_subnets=0), 'none'),  # conventional training
        (dict(subnet_loss='task'), 'none'),  # nothing is distilled
        (dict(logit_norm='none'), 'none'),  # ST (NeurIPS'22)
        (dict(logit_norm='l2', subnet_loss='task'), 'l2'),
    ],
)
def test_logit_norm_follows_the_subnet_loss(kwargs, expected):
    assert build(st_cfg(**kwargs)).task.logit_norm == expected
