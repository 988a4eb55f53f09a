"""The downstream configs are small deltas over the upstream configs they
name, the ST* ones wrap exactly their R50-ST model, and the ST++ backbone
file set in ``configs/_base_/st_backbone.py`` really loads into the
backbones of mmdet, mmseg and mmpose."""

from pathlib import Path
from typing import Any, Dict, Set

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from .data import FRAMEWORKS, REPO, architecture

CONFIGS = REPO / 'configs'
ST_BACKBONE = Config.fromfile(str(CONFIGS / '_base_' / 'st_backbone.py'))

# R50-ST config (upstream optimiser) -> the upstream config it changes.
UPSTREAM = {
    'mmdet/faster_rcnn_r50_st-backbone_1x_coco.py': (
        'mmdet::faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py'
    ),
    'mmdet/cascade_rcnn_r50_st-backbone_1x_coco.py': (
        'mmdet::cascade_rcnn/cascade-rcnn_r50_fpn_1x_coco.py'
    ),
    'mmdet/fcos_r50_st-backbone_1x_coco.py': (
        'mmdet::fcos/fcos_r50-caffe_fpn_gn-head_1x_coco.py'
    ),
    'mmdet/atss_r50_st-backbone_1x_coco.py': (
        'mmdet::atss/atss_r50_fpn_1x_coco.py'
    ),
    'mmdet/mask_rcnn_r50_st-backbone_1x_coco.py': (
        'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
    ),
    'mmdet/panoptic_fpn_r50_st-backbone_1x_coco.py': (
        'mmdet::panoptic_fpn/panoptic-fpn_r50_fpn_1x_coco.py'
    ),
    'mmseg/fpn_r50_st-backbone_4xb2-80k_cityscapes-512x1024.py': (
        'mmseg::sem_fpn/fpn_r50_4xb2-80k_cityscapes-512x1024.py'
    ),
    'mmpose/td-hm_res50_st-backbone_8xb64-210e_coco-256x192.py': (
        'mmpose::body_2d_keypoint/topdown_heatmap/coco/'
        'td-hm_res50_8xb64-210e_coco-256x192.py'
    ),
}
# Paths where an R50-ST config may differ from its upstream config.
BACKBONE_DELTA = {
    'model.backbone.init_cfg',
    'st_backbone_checkpoint',
    'st_backbone_init',
    'default_hooks.checkpoint.type',  # mmst.SafeCheckpointHook
}
EXTRA_DELTA = {
    'fcos': {
        'model.backbone.style',
        'model.backbone.norm_cfg.requires_grad',
        'model.data_preprocessor.mean',
        'model.data_preprocessor.std',
        'model.data_preprocessor.bgr_to_rgb',
    },
    'fpn_r50': {'model.backbone.type', 'model.pretrained'},
}
ADAMW = {
    'mmdet': dict(type='AdamW', lr=0.0001, weight_decay=0.1),
    'mmseg': dict(type='AdamW', lr=0.0005, weight_decay=0.05),
}


def _diff(a: Any, b: Any, prefix: str = '') -> Set[str]:
    """Dotted paths where two plain config dicts differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: Set[str] = set()
        for key in set(a) | set(b):
            path = f'{prefix}.{key}' if prefix else str(key)
            if key not in a or key not in b:
                out.add(path)
            else:
                out |= _diff(a[key], b[key], path)
        return out
    return set() if a == b else {prefix}


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root + '.')


def _load(path: str, tmp_path: Path) -> Config:
    if '::' in path:  # package::path resolves in _base_ only
        child = tmp_path / f'upstream_{abs(hash(path))}.py'
        child.write_text(f'_base_ = [{path!r}]\n')
        path = str(child)
    return Config.fromfile(path)


def _all_downstream_configs():
    paths = [CONFIGS / 'faster_rcnn_r50_st.py']
    for lib in ('mmdet', 'mmseg', 'mmpose'):
        paths += sorted((CONFIGS / lib).glob('*.py'))
    return paths


def _plain_of(st_path: Path) -> Path:
    """The R50-ST config an ST* config wraps (by the naming scheme)."""
    if st_path.name == 'faster_rcnn_r50_st.py':
        return CONFIGS / 'mmdet/faster_rcnn_r50_st-backbone_adamw-1x_coco.py'
    return st_path.with_name(st_path.name.replace('st-star', 'st-backbone'))


def test_config_set_is_complete():
    names = {
        p.relative_to(CONFIGS).as_posix() for p in _all_downstream_configs()
    }
    # 6 mmdet frameworks x {R50-ST, ST*} x {upstream optimiser, AdamW}
    # (the Faster R-CNN ST* AdamW one is configs/faster_rcnn_r50_st.py),
    # Semantic FPN alike, SimpleBaseline2D x {R50-ST, ST*} (Adam).
    assert len(names) == 6 * 4 + 4 + 2, sorted(names)
    assert 'mmdet/faster_rcnn_r50_st-backbone_1x_coco.py' in names
    for st, plain, _ in FRAMEWORKS.values():
        assert Path(st).is_file() and Path(plain).is_file()


@pytest.mark.parametrize('plain', sorted(UPSTREAM), ids=lambda p: p[6:30])
def test_r50_st_configs_are_small_deltas(plain, tmp_path):
    ours = Config.fromfile(str(CONFIGS / plain)).to_dict()
    upstream = _load(UPSTREAM[plain], tmp_path).to_dict()
    allowed = set(BACKBONE_DELTA)
    for key, extra in EXTRA_DELTA.items():
        if Path(plain).name.startswith(key):
            allowed |= extra
    delta = _diff(ours, upstream)
    unexpected = {p for p in delta if not any(_under(p, a) for a in allowed)}
    assert not unexpected, sorted(unexpected)
    assert any(_under(p, 'model.backbone.init_cfg') for p in delta)
    assert ours['model']['backbone']['init_cfg'] == dict(
        type='Pretrained',
        checkpoint=ST_BACKBONE.st_backbone_checkpoint,
        prefix='backbone.',
    )
    backbone = ours['model']['backbone']
    # the ST++ checkpoint is a plain-stem, pytorch-style ResNet-50
    assert backbone['type'] == 'ResNet' and backbone['depth'] == 50
    assert backbone.get('style', 'pytorch') == 'pytorch'
    assert not backbone.get('deep_stem', False)

    adamw_path = CONFIGS / plain.replace('st-backbone_', 'st-backbone_adamw-')
    if plain.startswith('mmpose'):  # upstream Adam lr 5e-4 = the paper's
        assert not adamw_path.exists()
        return
    adamw = Config.fromfile(str(adamw_path)).to_dict()
    delta = _diff(adamw, ours)
    assert delta and all(p.startswith('optim_wrapper.') for p in delta), delta
    optimizer = adamw['optim_wrapper']['optimizer']
    assert optimizer == ADAMW[plain.split('/')[0]]


@pytest.mark.parametrize(
    'st_path',
    [p for p in _all_downstream_configs() if 'st-star' in p.name]
    + [CONFIGS / 'faster_rcnn_r50_st.py'],
    ids=lambda p: p.name[:32],
)
def test_st_star_configs_wrap_their_r50_st_model(st_path):
    st = Config.fromfile(str(st_path))
    plain = Config.fromfile(str(_plain_of(st_path)))
    model = st.model
    assert model.type == 'mmst.StimulativeTraining'
    assert model.architecture.to_dict() == plain.model.to_dict()
    assert model.num_subnets == 6
    assert model.space == dict(depths='inter-stage')  # space3 on R50
    assert tuple(model.input_resize.ratio_range) == (0.43, 1.0)
    assert model.subnet_loss == 'task' and model.bn_stats == 'main'
    assert 'mmst' in st.custom_imports.imports
    assert st.model_wrapper_cfg.type == 'mmst.STDistributedDataParallel'
    # everything but the model and mmst's runtime keys is the R50-ST run's
    delta = _diff(st.to_dict(), plain.to_dict())
    allowed = {'model', 'custom_imports', 'model_wrapper_cfg', 'st_star_model'}
    if st.default_scope == 'mmpose':
        # the exact transformed keypoints for the sub-networks' targets
        allowed |= {'train_pipeline', 'train_dataloader'}
        pack = st.train_dataloader.dataset.pipeline[-1]
        assert pack.type == 'PackPoseInputs' and pack.pack_transformed

        def unscoped(pipeline):  # the base config's items carry _scope_
            return [
                {k: v for k, v in t.items() if k != '_scope_'}
                for t in pipeline
            ]

        assert unscoped(st.train_dataloader.dataset.pipeline[:-1]) == (
            unscoped(plain.train_dataloader.dataset.pipeline[:-1])
        )
    assert {p.split('.')[0] for p in delta} == allowed, sorted(delta)


def _write_backbone_checkpoint(path: Path) -> Dict[str, torch.Tensor]:
    """A backbone-only ResNet-50 checkpoint in the converter's format
    (``{'meta', 'state_dict'}`` with ``backbone.*`` keys), random weights
    and BN statistics."""
    from mmpretrain.models.backbones import ResNet

    torch.manual_seed(0)
    backbone = ResNet(depth=50)
    state = backbone.state_dict()
    for value in state.values():
        if value.is_floating_point():
            value.copy_(torch.rand_like(value))
    state = {f'backbone.{k}': v.clone() for k, v in state.items()}
    torch.save(
        {'meta': dict(backbone_only=True), 'state_dict': state}, str(path)
    )
    return state


@pytest.fixture(scope='module')
def st_backbone_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('ckpt') / 'r50_stpp_backbone.pth'
    return path, _write_backbone_checkpoint(path)


@pytest.mark.parametrize(
    'framework', ['faster_rcnn', 'semantic_fpn', 'simple_baseline']
)
def test_st_backbone_checkpoint_loads(framework, st_backbone_file):
    """Every tensor of the backbone file lands in the ST* model's backbone
    (mmseg's ResNetV1c, with its deep stem, would leave the stem out)."""
    import mmst  # noqa: F401
    from mmst.apis.launch import register_scope_modules
    from mmst.registry import MODELS

    path, state = st_backbone_file
    cfg = Config.fromfile(FRAMEWORKS[framework][0])
    init = architecture(cfg).backbone.init_cfg
    assert init.checkpoint == ST_BACKBONE.st_backbone_checkpoint
    init.checkpoint = str(path)
    register_scope_modules(cfg)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    loaded = model.architecture.backbone.state_dict()
    assert set(loaded) == {k[len('backbone.') :] for k in state}
    for key, value in loaded.items():
        assert torch.equal(value, state[f'backbone.{key}']), key
