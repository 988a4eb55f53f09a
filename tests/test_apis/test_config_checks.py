"""Config checks that need no model build (issue #25, item 4): a local
pretrained checkpoint the config names but that does not exist, and
synchronised BN in a distributed run without GPUs, are refused by
``mmst.apis.check_config`` before the Runner is built, naming the keys
this config has and the fix."""

import re
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmst.apis import check_config
from mmst.apis.checks import check_sync_bn, pretrained_files
from mmst.settings import SettingError

REPO = Path(__file__).resolve().parents[2]
ST_BACKBONE = 'checkpoints/r50_stpp_backbone.pth'


def _upstream(path: str, tmp_path: Path, extra: str = '') -> Config:
    """A user's config over the upstream config ``path`` (``lib::...``,
    which resolves in ``_base_`` only)."""
    child = tmp_path / f'user_{abs(hash(path))}.py'
    child.write_text(f'_base_ = [{path!r}]\n{extra}')
    return Config.fromfile(str(child))


# -- pretrained checkpoint files ------------------------------------------
def test_headline_config_without_the_st_backbone_is_refused(
    tmp_path, monkeypatch
):
    """configs/faster_rcnn_r50_st.py where checkpoints/ has no
    r50_stpp_backbone.pth: refused before any model is built, naming the
    key, the value, docs/released_weights.md and the overrides (before:
    MMEngine's bare FileNotFoundError at weight init, after the Runner had
    written the work dir)."""
    monkeypatch.chdir(tmp_path)  # relative paths resolve here
    cfg = Config.fromfile(str(REPO / 'configs/faster_rcnn_r50_st.py'))
    key = 'model.architecture.backbone.init_cfg'
    with pytest.raises(SettingError) as err:
        check_config(cfg)
    message = str(err.value)
    assert message.startswith(
        f"{key}.checkpoint='{ST_BACKBONE}': no such file "
        f'({tmp_path / ST_BACKBONE}); '
    )
    for part in (
        'docs/released_weights.md',
        f'st_to_mmpretrain.py SRC {ST_BACKBONE} --backbone-only',
        f'--cfg-options {key}.checkpoint=PATH',
        f'--cfg-options {key}=None',
    ):
        assert part in message, part
    # the file there, or the override: nothing left to refuse
    (tmp_path / ST_BACKBONE).parent.mkdir()
    (tmp_path / ST_BACKBONE).write_bytes(b'')
    assert pretrained_files(cfg) == [
        (f'{key}.checkpoint', ST_BACKBONE, f'{key}=None')
    ]
    check_config(cfg, build_model=False)
    (tmp_path / ST_BACKBONE).unlink()
    cfg.merge_from_dict({key: None})
    check_config(cfg, build_model=False)


def test_which_checkpoint_keys_are_local_files(tmp_path, monkeypatch):
    """Every Pretrained init anywhere in ``model`` (lists too), mmseg's /
    mmdet's ``pretrained=PATH`` and ``load_from`` unless resuming; URLs
    and model-zoo names are left alone; testing (``training=False``)
    checks none (MMEngine's Runner.test never initialises weights)."""
    monkeypatch.chdir(tmp_path)
    urls = [
        'https://download.openmmlab.com/x.pth',
        's3://bucket/x.pth',
        'torchvision://resnet50',
        'open-mmlab://resnet50_v1c',
        'mmcls://mobilenet_v2',
    ]
    cfg = Config(
        dict(
            model=dict(
                type='EncoderDecoder',
                pretrained='pretrain/vit.pth',
                backbone=dict(
                    init_cfg=[
                        dict(type='Pretrained', checkpoint='a.pth'),
                        dict(type='Constant', val=1),
                    ]
                ),
                heads=[
                    dict(init_cfg=dict(type='Pretrained', checkpoint=u))
                    for u in urls
                ],
                neck=dict(
                    init_cfg=dict(type='Pretrained', checkpoint=urls[0])
                ),
            ),
            load_from='work_dirs/x/epoch_1.pth',
        )
    )
    assert pretrained_files(cfg) == [
        ('model.pretrained', 'pretrain/vit.pth', 'model.pretrained=None'),
        (
            'model.backbone.init_cfg[0].checkpoint',
            'a.pth',
            'the entry model.backbone.init_cfg[0] removed from its list',
        ),
        ('load_from', 'work_dirs/x/epoch_1.pth', 'load_from=None'),
    ]
    with pytest.raises(
        SettingError,
        match=r"^model\.pretrained='pretrain/vit\.pth': no such file .*"
        r'--cfg-options model\.pretrained=PATH\), or train the layers from '
        r'scratch \(--cfg-options model\.pretrained=None\); also missing: '
        r"model\.backbone\.init_cfg\[0\]\.checkpoint='a\.pth', "
        r"load_from='work_dirs/x/epoch_1\.pth'$",
    ):
        check_config(cfg, build_model=False)
    check_config(cfg, build_model=False, training=False)
    cfg.resume = True  # load_from is the checkpoint to resume
    assert [k for k, _, _ in pretrained_files(cfg)][-1] != 'load_from'


# -- synchronised BN in a distributed run without GPUs -----------------------
FIX_TAIL = (
    '; or launch on GPUs; or train in one process (--launcher none: '
    'MMEngine turns SyncBN into BN there)'
)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason='SyncBN is refused without GPUs only'
)
def test_mmseg_sync_bn_names_its_three_keys(tmp_path):
    """mmseg's configs put SyncBN in backbone, decode_head and
    auxiliary_head (through one top-level ``norm_cfg``) and have no
    ``sync_bn``: the refusal names those three keys and their fix (before:
    "remove sync_bn='torch'" from the wrapper, after the Runner was
    built)."""
    cfg = _upstream(
        'mmseg::pspnet/pspnet_r50-d8_4xb2-40k_cityscapes-512x1024.py',
        tmp_path,
    )
    cfg.launcher = 'pytorch'  # what prepare_config records
    keys = [
        f'model.{part}.norm_cfg.type'
        for part in ('backbone', 'decode_head', 'auxiliary_head')
    ]
    expected = (
        ', '.join(f"{k}='SyncBN'" for k in keys)
        + ": synchronised BatchNorm trains only on GPUs (torch's and mmcv's "
        'SyncBatchNorm refuse CPU tensors), and this run is distributed '
        "(--launcher pytorch) without a GPU (device 'cpu'). Fix: plain BN "
        f'(--cfg-options {" ".join(k + "=BN" for k in keys)}); the config '
        "file's top-level norm_cfg (upstream configs share one across these "
        'keys) is copied into them when the file is read, so override the '
        "keys above, or set it to dict(type='BN', requires_grad=True) in the "
        'file' + FIX_TAIL
    )
    with pytest.raises(SettingError, match=f'^{re.escape(expected)}$'):
        check_config(cfg, build_model=False)
    cfg.merge_from_dict({k: 'BN' for k in keys})  # the fix it names
    check_config(cfg, build_model=False)


@pytest.mark.parametrize(
    'library, cfg, expected',
    [
        (
            'mmdet',  # lists of heads, mmcv's MMSyncBN
            dict(
                model=dict(
                    roi_head=dict(
                        bbox_head=[
                            dict(norm_cfg=dict(type='MMSyncBN')),
                            dict(norm_cfg=dict(type='BN')),
                        ]
                    )
                )
            ),
            "^model.roi_head.bbox_head\\[0\\].norm_cfg.type='MMSyncBN': "
            '.* Fix: plain BN \\(--cfg-options '
            'model.roi_head.bbox_head.0.norm_cfg.type=BN\\); or launch',
        ),
        (
            'mmpretrain',  # MMEngine's runner key, and a scoped type
            dict(
                sync_bn='torch',
                model=dict(neck=dict(norm_cfg=dict(type='mmpretrain.SyncBN'))),
            ),
            "^sync_bn='torch', model.neck.norm_cfg.type='mmpretrain.SyncBN'"
            ': .* Fix: plain BN \\(--cfg-options model.neck.norm_cfg.type=BN '
            'sync_bn=None\\); or launch',
        ),
        (
            'mmpose',
            dict(model=dict(head=dict(norm_cfg=dict(type='SyncBN')))),
            "^model.head.norm_cfg.type='SyncBN': .*--cfg-options "
            'model.head.norm_cfg.type=BN\\); or launch',
        ),
    ],
)
def test_sync_bn_forms_per_library(library, cfg, expected):
    cfg = Config(cfg)
    with pytest.raises(SettingError, match=expected):
        check_sync_bn(cfg, launcher='pytorch', device='cpu')
    check_sync_bn(cfg, launcher='pytorch', device='cuda')  # GPUs: fine
    check_sync_bn(cfg, launcher='none', device='cpu')  # reverted to BN
