"""README's one-step ST snippet on the configs the libraries ship.

A fixed sample of three configs unlike those that
tests/test_downstream/test_readme_snippet.py trains with the Runner
(mmpretrain ResNet-18, RetinaNet-R18, DeepLabV3-R18-d8,
SimpleBaseline-R50), each with the snippet read from README.md added: it
builds on the CPU with random weights, one ST step on a generated batch
gives finite losses, ``plain_config`` gives back the upstream model, which
takes the ST state dict strictly and predicts
(:func:`mmst.testing.upstream.check_config`). The upstream models' own loss
and prediction on the CPU are part of the same check.

The sweep over every ResNet-family config (a seeded sample of them) is
``tools/misc/upstream_configs.py``; its results are in
docs/upstream_configs.md.
"""

import math

import pytest

from mmst.testing import upstream

# (config, images per batch, image size): one image where batch statistics
# allow it, and smaller images than the sweep's, to save time (the pose
# model's codec fixes its 256 x 192)
SAMPLE = [
    # not ResNet-50's stages: RegNetX-400MF [1, 2, 7, 12]
    ('mmpretrain::regnet/regnetx-400mf_8xb128_in1k.py', 2, None),
    # proposals from the data: the RoI head renames them in place
    ('mmdet::libra_rcnn/libra-fast-rcnn_r50_fpn_1x_coco.py', 1, (96, 128)),
    # a dilated ResNetV1c; PSP pooling has BN on 1 x 1 maps: 2 images
    (
        'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py',
        2,
        (64, 64),
    ),
]


@pytest.mark.parametrize(
    'spec, num_images, size',
    SAMPLE,
    ids=[s[0].split('::')[0] for s in SAMPLE],
)
def test_readme_snippet_on_an_upstream_config(spec, num_images, size):
    result = upstream.check_config(spec, num_images=num_images, size=size)
    assert result.outcome == 'ok', result.reason
    assert set(result.losses) == {'loss_main', 'loss_subnet'}
    assert all(math.isfinite(v) for v in result.losses.values())
    # the inter-stage rule leaves sub-networks to sample
    assert result.space_size > 1, result.stage_depths


def test_the_snippet_is_readmes():
    """The check adds README's block after the marker, fences removed."""
    snippet = upstream.readme_snippet()
    assert "type='mmst.StimulativeTraining'" in snippet
    assert 'architecture=_base_.model' in snippet
    assert '```' not in snippet
    text = upstream.st_config_text('mmdet::x.py', snippet)
    assert text.startswith("_base_ = ['mmdet::x.py']\n")


def test_missing_marker_is_named(tmp_path):
    readme = tmp_path / 'README.md'
    readme.write_text('# no snippet here\n')
    with pytest.raises(ValueError, match='st-snippet'):
        upstream.readme_snippet(readme)


# Per library: configs the text pass drops (no ResNet-family type in them
# or their bases), family configs tried, and family configs refused.
DISCOVERY = {
    'mmpretrain': dict(
        dropped=['swin_transformer/swin-tiny_16xb64_in1k.py'],
        tried=['resnet/resnet18_8xb32_in1k.py'],
        refused={
            'mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py': (
                'no mmst task handles model type MoCo'
            ),
        },
    ),
    'mmdet': dict(
        dropped=[],
        tried=['retinanet/retinanet_r18_fpn_1x_coco.py'],
        refused={
            'lad/lad_r50-paa-r101_fpn_2xb8_coco_1x.py': (
                'needs files besides its config (a teacher model): '
                'teacher_ckpt'
            ),
            'soft_teacher/soft-teacher_faster-rcnn_r50-caffe_fpn_180k_'
            'semi-0.1-coco.py': 'no top-level model.backbone',
        },
    ),
    'mmseg': dict(
        dropped=[],
        tried=['deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py'],
        refused={},
    ),
    'mmpose': dict(
        dropped=[
            'body_2d_keypoint/topdown_heatmap/coco/'
            'td-hm_hrnet-w32_8xb64-210e_coco-256x192.py'
        ],
        tried=[
            'body_2d_keypoint/topdown_regression/coco/'
            'td-reg_res50_8xb64-210e_coco-256x192.py'
        ],
        refused={},
    ),
}


def test_discovery_keeps_the_resnet_family_and_names_refusals():
    paths = {
        library: [*d['dropped'], *d['tried'], *d['refused']]
        for library, d in DISCOVERY.items()
    }
    for library, rels in paths.items():
        shipped = set(upstream.config_files(library))
        assert len(shipped) > 100, library
        assert set(rels) <= shipped, set(rels) - shipped
    found = upstream.discover(upstream.LIBRARIES, paths)
    for library, expected in DISCOVERY.items():
        by_path = {d.path: d for d in found[library]}
        assert not set(expected['dropped']) & set(by_path)
        for rel in expected['tried']:
            item = by_path[rel]
            assert item.tried, item
            assert item.backbone.rpartition('.')[2] in (
                upstream.family_classes(library)
            )
            assert item.spec == f'{library}::{rel}'
        for rel, reason in expected['refused'].items():
            item = by_path[rel]
            assert item.family and not item.tried
            assert reason in item.refusal, item.refusal


def test_a_sweep_goes_on_after_a_bad_config_and_writes_its_table():
    """Each config runs in a forked child: an error is a row of the table,
    not the end of the sweep."""
    missing = upstream.Discovered(
        'mmdet', 'no_such/config.py', 'ResNet', 'RetinaNet', True, None, 'a'
    )
    refused = upstream.Discovered(
        'mmdet', 'lad/x.py', 'ResNet', 'LAD', True, 'needs files', 'b'
    )
    discovered = {'mmdet': [missing, refused]}
    lines = []
    results = upstream.sweep(discovered, timeout=120, log=lines.append)
    ((group, result),) = results['mmdet']
    assert group == [missing]
    assert result.outcome == 'refused'
    assert result.reason.startswith('loading the upstream config: ')
    assert len(lines) == 1 and 'mmdet::no_such/config.py' in lines[0]
    text = upstream.results_markdown(discovered, results)
    assert '| `mmdet::no_such/config.py` | 1 | ResNet | - | - | refused: ' in (
        text
    )
    assert '| mmdet | `mmdet::lad/x.py` | ResNet | needs files |' in text
