"""mmst.apis.plain_config on the shipped configs and on made-up ones."""

import copy
from pathlib import Path

import pytest
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope

from mmst.apis import is_st_model, plain_config, prepare_config

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
# ST configs (ST / ST++ / ST*) of each library
ST_CONFIGS = [
    'mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py',
    'mmpretrain/imagenet/resnet50_stpp-a1_in1k.py',
    'mmpretrain/cifar100/mobilenetv3_st_cifar100.py',
    'faster_rcnn_r50_st.py',
    'mmseg/fpn_r50_st-star_4xb2-80k_cityscapes-512x1024.py',
    'mmpose/td-hm_res50_st-star_8xb64-210e_coco-256x192.py',
]


def _cfg(rel: str) -> Config:
    return Config.fromfile(str(CONFIGS / rel))


@pytest.mark.parametrize('rel', ST_CONFIGS)
def test_st_config_becomes_its_architecture(rel):
    cfg = _cfg(rel)
    prepare_config(cfg)  # as tools/train.py: adds mmst.STCostHook
    hooks = cfg.custom_hooks
    before = copy.deepcopy(cfg.to_dict())
    plain = plain_config(cfg)
    assert cfg.to_dict() == before, 'the argument was modified'

    want = copy.deepcopy(cfg.model.architecture)
    top = cfg.get('data_preprocessor')
    if top is not None and 'data_preprocessor' not in want:
        want.data_preprocessor = top  # what the Runner would do
    assert plain.model == want
    assert 'model_wrapper_cfg' not in plain
    for key, loop in (('val_cfg', 'ValLoop'), ('test_cfg', 'TestLoop')):
        if cfg.get(key, {}).get('type') == 'mmst.SubnetValLoop':
            assert plain[key] == dict(type=loop), plain[key]
        else:
            assert plain.get(key) == cfg.get(key)
    # the cost of ST training is not measured for the plain model
    assert plain.get('custom_hooks', []) == hooks[:-1]
    assert hooks[-1] == dict(type='mmst.STCostHook')
    # everything else is kept, custom_imports included
    rest = {
        k
        for k in cfg.keys()
        if k
        not in ('model', 'model_wrapper_cfg', 'val_cfg', 'test_cfg')
        + ('custom_hooks',)
    }
    for key in rest:
        assert plain[key] == cfg[key], key
    assert plain.custom_imports == cfg.custom_imports
    assert plain_config(plain).to_dict() == plain.to_dict()  # idempotent


def test_file_path_and_config_agree():
    rel = 'mmpretrain/fashion_mnist/resnet20_st_fmnist.py'
    assert (
        plain_config(str(CONFIGS / rel)).to_dict()
        == plain_config(CONFIGS / rel).to_dict()
        == plain_config(_cfg(rel)).to_dict()
    )


@pytest.mark.parametrize(
    'rel',
    [
        'faster_rcnn_r50_st.py',
        'mmpretrain/cifar100/mobilenetv3_st_cifar100.py',
    ],
)
def test_plain_model_takes_the_st_checkpoint_keys(rel):
    """The plain model has exactly the ST model's state_dict keys (which
    are the checkpoint's), and the same data preprocessor."""
    cfg = _cfg(rel)
    prepare_config(cfg)
    st_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:  # as the Runner does
        st_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        st = MODELS.build(st_cfg)
        plain = MODELS.build(plain_config(cfg).model)
    assert not is_st_model(plain_config(cfg).model)
    assert set(plain.state_dict()) == set(st.state_dict())
    pre, st_pre = plain.data_preprocessor, st.architecture.data_preprocessor
    assert type(pre) is type(st_pre)
    for name, buffer in st_pre.named_buffers():
        assert buffer.equal(dict(pre.named_buffers())[name]), name


@pytest.mark.parametrize(
    'rel',
    [
        'mmdet/faster_rcnn_r50_st-backbone_1x_coco.py',
        'mmpretrain/imagenet/resnet50_stpp_eval_in1k.py',
    ],
)
def test_config_without_mmst_parts_is_unchanged(rel):
    """Only a top-level data preprocessor moves into the model (mmpretrain's
    ImageNet configs have one; mmdet's init_detector would ignore it)."""
    cfg = _cfg(rel)
    plain = plain_config(cfg)
    top = cfg.get('data_preprocessor')
    if top is not None:
        assert 'data_preprocessor' not in cfg.model
        cfg.model.data_preprocessor = top
    assert plain.to_dict() == cfg.to_dict()


def test_plain_model_config_loses_mmst_loop_and_wrapper_only():
    """A CT config (plain model): the loop and the mmst wrapper go, a
    top-level data preprocessor joins the model; another wrapper stays."""
    cfg = _cfg('mmpretrain/cifar100/mobilenetv3_ct_cifar100.py')
    cfg.val_cfg.fp16 = True
    plain = plain_config(cfg)
    assert plain.model.type == cfg.model.type
    assert plain.model.data_preprocessor == cfg.data_preprocessor
    assert plain.val_cfg == dict(type='ValLoop', fp16=True)
    assert 'model_wrapper_cfg' not in plain

    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel', find_unused_parameters=True
    )
    assert plain_config(cfg).model_wrapper_cfg == cfg.model_wrapper_cfg


def test_st_model_preprocessor_precedence():
    """The architecture's own preprocessor, else the ST model's, else the
    config's top-level one (as the Runner and the ST model resolve it)."""
    arch = dict(type='ImageClassifier', backbone=dict(type='ResNet'))
    own, st, top = (
        dict(type='ClsDataPreprocessor', num_classes=n) for n in (1, 2, 3)
    )
    base = dict(
        model=dict(type='mmst.StimulativeTraining', architecture=arch),
        data_preprocessor=top,
    )

    def resolve(**parts):
        cfg = Config(copy.deepcopy(base))
        cfg.model.update(parts.get('model', {}))
        cfg.model.architecture.update(parts.get('arch', {}))
        return plain_config(cfg).model.data_preprocessor.num_classes

    assert resolve() == 3
    assert resolve(model=dict(data_preprocessor=st)) == 2
    assert (
        resolve(
            model=dict(data_preprocessor=st),
            arch=dict(data_preprocessor=own),
        )
        == 1
    )


@pytest.mark.parametrize(
    'cfg,error,match',
    [
        (dict(a=1), ValueError, r'model=None .* allowed: a model config'),
        (
            dict(model=dict(type='mmst.StimulativeTraining')),
            ValueError,
            r'model.architecture is missing .* allowed: the upstream model',
        ),
        (
            dict(
                model=dict(
                    type='mmst.StimulativeTraining', architecture='resnet'
                )
            ),
            TypeError,
            r'model.architecture=str .* allowed: a model config dict',
        ),
    ],
)
def test_errors_name_the_key(cfg, error, match):
    with pytest.raises(error, match=match):
        plain_config(Config(cfg))


def test_wrong_argument_type():
    with pytest.raises(TypeError, match='cfg_or_path=dict .* allowed'):
        plain_config(dict(model=dict(type='ImageClassifier')))


def test_dumped_plain_config_builds_with_init_detector(tmp_path):
    """A plain config written to a file is a config file mmdet reads (its
    custom_imports import mmst)."""
    from mmdet.apis import init_detector

    path = tmp_path / 'faster_rcnn_r50_st_plain.py'
    plain_config(CONFIGS / 'faster_rcnn_r50_st.py').dump(str(path))
    assert Config.fromfile(str(path)).custom_imports.imports == ['mmst']
    detector = init_detector(str(path), device='cpu')
    assert type(detector).__name__ == 'FasterRCNN'
