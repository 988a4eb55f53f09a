"""Exporting a sub-network of a non-ResNet backbone (mmpretrain MobileNetV3
and VisionTransformer, trained one epoch with ST on a tiny folder data
set) with mmst.deploy.export_subnet: the kept blocks' keys unchanged,
the skipped blocks' keys gone, ``tools/test.py`` on the export gives
exactly the loafing table's number for that member, and the ONNX file
matches PyTorch on the test images."""

import copy
from pathlib import Path

import pytest
import torch

from tests.test_core.common import make_folder_dataset, runner_cfg
from tests.test_distributed.common import tools_test

REPO = Path(__file__).resolve().parents[2]
TEST_TOOL = REPO / 'tools' / 'test.py'
RECAL = 12  # two training batches of 6
CLASSES = 3

HEAD = dict(
    type='LinearClsHead',
    num_classes=CLASSES,
    loss=dict(type='CrossEntropyLoss', loss_weight=1.0),
)
ARCHS = {
    # 4 stages of 2, 3, 2, 3 blocks (a shape-changing block + residuals)
    'mobilenet_v3': dict(
        backbone=dict(type='MobileNetV3', arch='small'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(HEAD, in_channels=576),
        subnet='1,2,1,2',
    ),
    # one stage of 4 encoder layers
    'vit': dict(
        backbone=dict(
            type='VisionTransformer',
            arch=dict(
                embed_dims=32,
                num_layers=4,
                num_heads=2,
                feedforward_channels=64,
            ),
            img_size=16,
            patch_size=4,
            out_type='cls_token',
        ),
        neck=None,
        head=dict(HEAD, type='VisionTransformerClsHead', in_channels=32),
        subnet='2',
    ),
}


def _model(arch: dict) -> dict:
    architecture = dict(
        type='ImageClassifier',
        data_preprocessor=dict(
            type='ClsDataPreprocessor',
            num_classes=CLASSES,
            mean=[100.0] * 3,
            std=[60.0] * 3,
        ),
        backbone=copy.deepcopy(arch['backbone']),
        head=copy.deepcopy(arch['head']),
    )
    if arch['neck']:
        architecture['neck'] = arch['neck']
    return dict(
        type='mmst.StimulativeTraining',
        architecture=architecture,
        num_subnets=1,
    )


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Per architecture: a config (ST model, SubnetValLoop) and the
    checkpoint of one epoch of ST training (3 steps)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmst.apis import prepare_config

    root = tmp_path_factory.mktemp('export')
    data_root = make_folder_dataset(root / 'data', classes=CLASSES)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tools/test.py subprocess below
    out = {}
    try:
        for name, arch in ARCHS.items():
            cfg = runner_cfg(
                root / name,
                data_root,
                _model(arch),
                max_epochs=1,
                val_cfg=dict(
                    type='mmst.SubnetValLoop',
                    subnets=['smallest'],
                    bn_recal_images=RECAL,
                ),
            )
            cfg['test_dataloader'] = cfg['val_dataloader']
            cfg['test_evaluator'] = cfg['val_evaluator']
            cfg['test_cfg'] = dict()
            config = root / f'{name}.py'
            Config(cfg).dump(str(config))
            train_cfg = Config.fromfile(str(config))
            train_cfg.train_cfg.val_interval = 100  # no validation
            Runner.from_cfg(prepare_config(train_cfg)).train()
            out[name] = dict(
                config=str(config),
                ckpt=str(root / name / 'epoch_1.pth'),
                subnet=arch['subnet'],
                root=root / name,
            )
        yield out
    finally:
        torch.set_num_threads(threads)


def _tools_test(config: Path, ckpt: Path, work_dir: Path) -> dict:
    """tools/test.py (in this single-threaded process): the metrics it
    records."""
    return tools_test(config, ckpt, work_dir)


@pytest.mark.parametrize('name', sorted(ARCHS))
def test_non_resnet_member_export_reproduces_loafing(trained, name):
    from mmengine.config import Config

    from mmst.analysis import run_loafing
    from mmst.deploy import build_model, export_subnet
    from mmst.subnet import ElasticDepth

    run = trained[name]
    out = run['root'] / 'export'
    summary = export_subnet(
        run['config'],
        run['ckpt'],
        run['subnet'],
        str(out),
        bn_recal_images=RECAL,
    )
    depths = [int(k) for k in run['subnet'].split(',')]
    assert summary['subnet'] == depths
    # ViT has no BN layer: nothing re-estimated, no image read
    assert summary['bn_recal_images'] == (0 if name == 'vit' else RECAL)
    assert summary['params'] < summary['full_params']

    # keys: the kept blocks' unchanged, the skipped blocks' gone
    source = torch.load(run['ckpt'], map_location='cpu')['state_dict']
    state = torch.load(out / 'subnet.pth', map_location='cpu')['state_dict']
    full = build_model(run['config'], run['ckpt'])
    elastic = ElasticDepth(full.backbone)
    names = {id(m): n for n, m in full.backbone.named_modules()}
    kept, skipped = set(), set()
    for k, stage in zip(depths, elastic.stages):
        for i, block in enumerate(stage):
            prefix = f'backbone.{names[id(block)]}.'
            keys = {key for key in source if key.startswith(prefix)}
            assert keys, prefix
            (kept if i < k else skipped).update(keys)
    assert kept <= set(state) and not skipped & set(state)
    assert set(state) == set(source) - skipped
    for key in kept:
        if not key.endswith(('running_mean', 'running_var')):
            assert torch.equal(state[key], source[key]), key
    cfg = Config.fromfile(str(out / 'config.py'))
    assert cfg.model.type == 'ImageClassifier'
    assert cfg.model.backbone.type == 'mmst.SubnetBackbone'
    assert cfg.model.backbone.backbone.type == ARCHS[name]['backbone']['type']
    fixed = build_model(cfg, str(out / 'subnet.pth'))  # strict load
    assert type(fixed.backbone) is type(full.backbone)

    # tools/test.py on the export: exactly the loafing table's number
    table = run_loafing(
        run['config'],
        [run['ckpt']],
        labels=['ST'],
        subnets=[run['subnet']],
        bn_recal_images=RECAL,
        split='test',
    )
    row = next(n for n in table['networks'] if n['name'] != 'main')
    assert row['subnet'] == depths
    assert row['params'] == summary['params']
    metrics = _tools_test(out / 'config.py', out / 'subnet.pth', out / 'w')
    assert metrics['accuracy/top1'] == row['metrics']['ST']['accuracy/top1']

    # and the outputs themselves: the standalone model computes exactly
    # what the ST model computes as the sub-network
    from mmst.deploy import eval_inputs

    (batch,) = eval_inputs(cfg, fixed, 4)
    with torch.no_grad():
        fixed_out = fixed(batch, None, 'tensor')
        full.load_state_dict(
            {**full.state_dict(), **state}, strict=True
        )  # the exported BN statistics into the full model
        with elastic.activate(tuple(tuple(range(k)) for k in depths)):
            elastic_out = full(batch, None, 'tensor')
    assert torch.equal(fixed_out, elastic_out)

    # mmpretrain's own inference API runs the export as it is
    from mmpretrain.apis import ImageClassificationInferencer

    image = sorted((run['root'].parent / 'data').rglob('*.png'))[0]
    inferencer = ImageClassificationInferencer(
        str(out / 'config.py'), pretrained=str(out / 'subnet.pth')
    )
    (pred,) = inferencer(str(image))
    batch = next(iter(inferencer.preprocess([str(image)])))
    data = fixed.data_preprocessor(batch, False)
    with torch.no_grad():
        scores = fixed(data['inputs'], None, 'tensor').softmax(-1)[0]
    # the same image, model and weights (one image each, same kernels)
    assert torch.equal(torch.as_tensor(pred['pred_scores']), scores)


def test_onnx_parity(trained):
    pytest.importorskip('onnxruntime', reason='pip install onnxruntime')
    from mmst.deploy import (
        build_model,
        eval_inputs,
        export_onnx,
        export_subnet,
        network_rounding_bound,
        onnx_parity,
    )
    from tests.tolerance import assert_far_below

    run = trained['mobilenet_v3']
    out = run['root'] / 'export_onnx'
    summary = export_subnet(
        run['config'],
        run['ckpt'],
        'smallest',
        str(out),
        bn_recal_images=RECAL,
        onnx=True,
        onnx_images=18,
    )
    assert summary['subnet'] == [1, 1, 1, 1]
    parity = summary['onnx_parity']
    assert parity['images'] == 18  # the whole test set, real images
    # the bound is float32 rounding of the counted accumulations, relative
    # to the outputs' magnitude (mmst.deploy.rounding)
    assert parity['accumulation_length'] > 1000, parity
    assert parity['bounds'] == [
        network_rounding_bound(parity['accumulation_length'], m)
        for m in parity['max_abs_output']
    ]
    assert parity['max_abs_diff'] <= parity['atol'] == min(parity['bounds'])
    assert (out / 'subnet.onnx').stat().st_size > 0

    # a second export from the files, and a model the ONNX file does not
    # belong to is caught
    from mmengine.config import Config

    cfg = Config.fromfile(str(out / 'config.py'))
    again = out / 'again.onnx'
    info = export_onnx(
        str(out / 'config.py'), str(again), str(out / 'subnet.pth')
    )
    assert info['input_shape'] == [3, 16, 16]
    fixed = build_model(cfg, str(out / 'subnet.pth'))
    inputs = eval_inputs(cfg, fixed, 6)
    parity = onnx_parity(fixed, str(again), inputs)
    assert parity['images'] == 6
    # a real defect, BN statistics other than the exported ones (10% off
    # in the last BN's variance), is refused, and is far above the bound
    bn = [m for m in fixed.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        bn[-1].running_var.mul_(1.1)
    with pytest.raises(ValueError, match='differs from PyTorch by up to'):
        onnx_parity(fixed, str(again), inputs)
    # the change it makes, measured with a fixed bound that passes all
    defect = onnx_parity(fixed, str(again), inputs, atol=1e9)
    assert_far_below(parity['atol'], defect['max_abs_diff'], factor=10)
    with pytest.raises(FileExistsError, match='--force'):
        export_onnx(fixed, str(again), input_shape=(3, 16, 16))


def test_export_refusals(trained, tmp_path):
    import torch.nn as nn

    from mmst.deploy import check_onnx_task, export_subnet

    run = trained['vit']
    with pytest.raises(ValueError, match=r'got stage 1 keeping 5 blocks'):
        export_subnet(run['config'], run['ckpt'], '5', str(tmp_path / 'a'))
    with pytest.raises(ValueError, match='--bn-recal-images'):
        export_subnet(
            run['config'],
            run['ckpt'],
            '1',
            str(tmp_path / 'a'),
            bn_recal_images=-1,
        )
    assert not (tmp_path / 'a').exists()
    with pytest.raises(ValueError, match='is not supported; allowed'):
        check_onnx_task(nn.Linear(2, 2))


@pytest.mark.parametrize(
    'framework', ['faster_rcnn', 'semantic_fpn', 'simple_baseline']
)
def test_downstream_member_export(tmp_path, framework):
    """The backbone of a detector, a segmentor and a pose estimator (the
    shipped ST* configs, shrunk): the exported model computes exactly what
    the ST model computes as the sub-network (the detector: its features,
    backbone + neck; the others: their ``mode='tensor'`` outputs); the
    segmentor's ONNX file matches PyTorch; the detector's ONNX export is
    refused."""
    from mmst.analysis import flatten_outputs, load_config
    from mmst.deploy import build_model, eval_inputs, export_subnet
    from mmst.subnet import ElasticDepth
    from tests.test_downstream.data import (
        FRAMEWORKS,
        make_cityscapes,
        make_coco,
        tiny_config,
    )

    st_path, _, kind = FRAMEWORKS[framework]
    make = make_cityscapes if kind == 'cityscapes' else make_coco
    cfg = tiny_config(st_path, kind, make(tmp_path / 'data'))
    cfg.work_dir = str(tmp_path / 'work')
    config = tmp_path / 'st.py'
    cfg.dump(str(config))
    # random weights of the ST model, saved as ST checkpoints are (plain)
    torch.manual_seed(0)
    model = build_model(load_config(str(config)))
    ckpt = tmp_path / 'st.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)

    onnx = framework == 'semantic_fpn'
    out = tmp_path / 'export'
    # the tiny Cityscapes' training crops differ in size, which BN
    # re-estimation's batches cannot (mmst.engine.recalibrate_bn)
    recal = 0 if kind == 'cityscapes' else 2
    kwargs = dict(bn_recal_images=recal, onnx=onnx, onnx_images=2)
    if framework == 'faster_rcnn':
        with pytest.raises(ValueError, match=r'task: detection\) is not'):
            export_subnet(
                str(config), str(ckpt), '1,1,1,1', str(out), onnx=True
            )
    summary = export_subnet(
        str(config), str(ckpt), '1,1,1,1', str(out), **kwargs
    )
    assert summary['subnet'] == [1, 1, 1, 1]
    assert summary['dropped_keys'] > 0
    if onnx:
        parity = summary['onnx_parity']
        assert parity['max_abs_diff'] <= parity['atol'], parity

    fixed = build_model(summary['config'], summary['checkpoint'])
    full = build_model(str(config), str(ckpt))
    state = torch.load(summary['checkpoint'], map_location='cpu')
    full.load_state_dict({**full.state_dict(), **state['state_dict']})
    elastic = ElasticDepth(full.backbone)
    (batch,) = eval_inputs(load_config(summary['config']), fixed, 1)
    # a two-stage detector's tensor mode needs the images' metainfo
    detector = framework == 'faster_rcnn'
    with torch.no_grad():
        out = (
            fixed.extract_feat(batch)
            if detector
            else fixed(batch, None, 'tensor')
        )
        got = flatten_outputs(out)
        with elastic.activate(((0,),) * 4):
            out = (
                full.extract_feat(batch)
                if detector
                else full(batch, None, 'tensor')
            )
            expected = flatten_outputs(out)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert torch.equal(g, e)
