"""The analysis tools on a ResNet-20 trained for a few iterations on
Fashion-MNIST: the loafing table (tools/analysis_tools/loafing.py), the
logit magnitude (logit_magnitude.py), and a sub-network extracted with
tools/model_converters/extract_subnet.py, which ``tools/test.py`` must
evaluate to exactly the loafing table's number; ST++ fine-tuned from the
probed checkpoint; and that the tools are thin command lines over
mmst.analysis, none importing another by path."""

import ast
import csv
import importlib
import json
import pickle
import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from tests.test_distributed.common import repo_module, run_tool, tools_test

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / 'data' / 'fashion_mnist'
CT_CONFIG = REPO / 'configs/mmpretrain/fashion_mnist/resnet20_ct_fmnist.py'
FT_CONFIG = (
    REPO / 'configs/mmpretrain/fashion_mnist/resnet20_stpp_ft_fmnist.py'
)
LOAFING = REPO / 'tools' / 'analysis_tools' / 'loafing.py'
LOGITS = REPO / 'tools' / 'analysis_tools' / 'logit_magnitude.py'
EXTRACT = REPO / 'tools' / 'model_converters' / 'extract_subnet.py'
TEST_TOOL = REPO / 'tools' / 'test.py'
VAL_IMAGES = 500
RECAL = 128  # two training batches of 64
SUBNETS = ['1,1,1', '1,2,3', '3,3,3']
LAST_EPOCH = 12
BATCH = 64

pytestmark = pytest.mark.skipif(
    not (DATA / 'train-images-idx3-ubyte').exists(),
    reason='Fashion-MNIST files missing (bash tools/setup_env.sh --data)',
)


def _module(path: Path):
    return importlib.import_module(repo_module(path))


@pytest.fixture(scope='module')
def tools():
    return dict(
        loafing=_module(LOAFING),
        logits=_module(LOGITS),
        extract=_module(EXTRACT),
    )


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny config (1024 training / 200 test images) and the checkpoints
    of epochs 1 and 12 (16 and 192 SGD steps at batch 64). At epoch 12 the
    network loafs: main about 71%, ``[1,1,1]`` about 44% (seed 0)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmst.apis import prepare_config

    root = tmp_path_factory.mktemp('analysis')
    config = root / 'tiny_fmnist.py'
    config.write_text(
        f'_base_ = [{str(CT_CONFIG)!r}]\n'
        f'data_root = {str(DATA)!r}\n'
        f'train_dataloader = dict(batch_size={BATCH}, '
        'dataset=dict(data_root=data_root, indices=1024))\n'
        'val_dataloader = dict(batch_size=100, '
        f'dataset=dict(data_root=data_root, indices={VAL_IMAGES}))\n'
        'test_dataloader = val_dataloader\n'
    )
    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(root / 'train')
    cfg.train_cfg.max_epochs = LAST_EPOCH
    cfg.param_scheduler.T_max = LAST_EPOCH
    cfg.optim_wrapper.optimizer.lr = 0.1
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.log_level = 'WARNING'
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the tools/test.py subprocess below
    try:
        Runner.from_cfg(prepare_config(cfg)).train()
        yield dict(
            root=root,
            config=str(config),
            ckpts=[
                str(root / 'train' / f'epoch_{e}.pth') for e in (1, LAST_EPOCH)
            ],
        )
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def loafing_result(tools, trained):
    out = trained['root'] / 'loafing'
    result = tools['loafing'].main(
        [trained['config'], *trained['ckpts'], '--labels', 'E1', 'E12']
        + ['--subnets', *SUBNETS, '--bn-recal-images', str(RECAL)]
        + ['--out-dir', str(out), '--no-progress']
    )
    return result, out


def _net(result: dict, name: str) -> dict:
    return next(n for n in result['networks'] if n['name'] == name)


def test_loafing_writes_table_and_plot(loafing_result):
    result, out = loafing_result
    names = [n['name'] for n in result['networks']]
    assert names == ['main', '[1,1,1]', '[1,2,3]', '[3,3,3]']
    assert result['metric'] == 'accuracy/top1'
    assert result['eval_images'] == VAL_IMAGES
    assert result['input_shape'] == [1, 28, 28]

    main, small, mid, full = result['networks']
    assert main['bn_stats'] == 'stored' and 'recal_images_used' not in main
    for net in (small, mid, full):
        assert net['bn_stats'] == 're-estimated'
        assert net['recal_images_used'] == RECAL
    assert [n['blocks'] for n in result['networks']] == [9, 3, 6, 9]
    assert small['flops'] < mid['flops'] < full['flops'] == main['flops']
    assert small['params'] < mid['params'] < full['params'] == main['params']
    for net in result['networks']:
        for label in ('E1', 'E12'):
            assert 0.0 <= net['results'][label] <= 100.0
    # 192 SGD steps: far above chance (10%) but far from converged
    assert 25.0 < main['results']['E12'] < 90.0

    assert (out / 'loafing.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert json.loads((out / 'loafing.json').read_text()) == result
    rows = list(csv.reader((out / 'loafing.csv').open()))
    assert len(rows) == 1 + len(names)
    assert rows[0][-2:] == ['E1 accuracy/top1', 'E12 accuracy/top1']
    assert float(rows[2][-1]) == small['results']['E12']
    table = (out / 'loafing.md').read_text()
    assert table.count('| sub-network |') == 3
    assert table.count('| main |') == 1
    assert f'{mid["results"]["E1"]:.2f}' in table


def test_loafing_without_bn_recal_differs(tools, trained, loafing_result):
    result, _ = loafing_result
    stored = tools['loafing'].main(
        [trained['config'], trained['ckpts'][1], '--labels', 'E12']
        + ['--subnets', *SUBNETS, '--no-bn-recal', '--no-progress']
        + ['--out-dir', str(trained['root'] / 'loafing_stored')]
    )
    acc = {n['name']: n['results']['E12'] for n in result['networks']}
    acc_stored = {n['name']: n['results']['E12'] for n in stored['networks']}
    assert stored['bn_recal_images'] == 0
    assert acc_stored['main'] == acc['main']
    # the full network with the stored statistics is the main network
    assert acc_stored['[3,3,3]'] == acc_stored['main']
    assert any(acc_stored[k] != acc[k] for k in ('[1,1,1]', '[1,2,3]'))


def test_extract_subnet_reproduces_loafing(
    tools, trained, loafing_result, capfd
):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmst.analysis import count_flops
    from mmst.registry import MODELS

    result, _ = loafing_result
    out = trained['root'] / 'extract'
    summary = tools['extract'].main(
        [trained['config'], trained['ckpts'][1], '--subnet', '1,2,3']
        + [str(out), '--bn-recal-images', str(RECAL)]
    )
    assert summary['bn_recal_images'] == RECAL
    ckpt = torch.load(out / 'subnet.pth', map_location='cpu')
    state = ckpt['state_dict']
    assert ckpt['meta']['mmst_subnet']['subnet'] == [1, 2, 3]
    assert not any(
        k.startswith(
            ('backbone.layer1.1.', 'backbone.layer1.2.', 'backbone.layer2.2.')
        )
        for k in state
    )
    assert 'backbone.layer3.2.conv2.weight' in state
    assert 'head.fc.weight' in state
    # the BN statistics are the sub-network's, not the stored ones
    source = torch.load(trained['ckpts'][1], map_location='cpu')['state_dict']
    key = 'backbone.layer3.2.bn2.running_var'
    assert not torch.equal(state[key], source[key])
    assert torch.equal(
        state['backbone.layer3.2.conv2.weight'],
        source['backbone.layer3.2.conv2.weight'],
    )
    # smaller on disk than the full network saved the same way
    full = trained['root'] / 'full_state.pth'
    torch.save(dict(meta=ckpt['meta'], state_dict=source), full)
    assert (out / 'subnet.pth').stat().st_size < 0.95 * full.stat().st_size

    # the standalone model: fewer parameters and FLOPs, as in the table;
    # the original backbone (mmst.ElasticResNet_CIFAR of the config) fixed
    # at the sub-network by the generic mmst.SubnetBackbone
    cfg = Config.fromfile(str(out / 'config.py'))
    assert cfg.model.backbone.type == 'mmst.SubnetBackbone'
    assert cfg.model.backbone.subnet == [1, 2, 3]
    assert cfg.model.backbone.backbone.type == 'mmst.ElasticResNet_CIFAR'
    assert cfg.val_cfg == dict(type='ValLoop')
    assert cfg.model.type == 'ImageClassifier'
    assert cfg.get('model_wrapper_cfg') is None  # not ST's wrapper
    init_default_scope('mmpretrain')
    fixed = MODELS.build(cfg.model).eval()
    fixed.load_state_dict(state, strict=True)
    row, main = _net(result, '[1,2,3]'), _net(result, 'main')
    params = sum(p.numel() for p in fixed.parameters())
    assert params == row['params'] < main['params']
    flops = count_flops(fixed, (1, 28, 28))
    assert flops == row['flops'] < main['flops']

    # tools/test.py on the extracted files gives the table's accuracy
    preds = trained['root'] / 'preds.pkl'
    capfd.readouterr()
    metrics = tools_test(
        out / 'config.py',
        out / 'subnet.pth',
        trained['root'] / 'test_work',
        '--out',
        preds,
    )
    captured = capfd.readouterr()
    logged = re.findall(
        r'accuracy/top1: ([0-9.]+)', captured.out + captured.err
    )
    assert logged, captured.out[-2000:]
    expected = row['results']['E12']
    assert logged[-1] == f'{expected:.4f}'
    # the metric tools/test.py records, exactly the table's
    assert metrics['accuracy/top1'] == expected
    with open(preds, 'rb') as f:
        samples = pickle.load(f)
    assert len(samples) == VAL_IMAGES
    correct = sum(
        int(s['pred_label'].view(-1)[0]) == int(s['gt_label'].view(-1)[0])
        for s in samples
    )
    assert correct == round(expected * VAL_IMAGES / 100)


def test_extract_subnet_refusals(tools, trained):
    from mmengine.config import Config

    from mmst.deploy import subnet_config

    extract = tools['extract']
    config, ckpt = trained['config'], trained['ckpts'][0]
    out = trained['root'] / 'refused'
    with pytest.raises(ValueError, match=r"--subnet entry 'a,b' is invalid"):
        extract.main([config, ckpt, '--subnet', 'a,b', str(out)])
    with pytest.raises(
        ValueError,
        match=r'allowed: one integer depth per stage, 1 <= depth <= the '
        r'stage length; got stage 3 keeping 4 blocks \(1\.\.3\)',
    ):
        extract.main([config, ckpt, '--subnet', '1,2,4', str(out)])
    with pytest.raises(ValueError, match=r'got 2 values for 3 stages'):
        extract.main([config, ckpt, '--subnet', '1,2', str(out)])
    with pytest.raises(ValueError, match=r"--subnet='all' is invalid"):
        extract.main([config, ckpt, '--subnet', 'all', str(out)])
    assert not out.exists()  # nothing written by a refused call

    out.mkdir()
    (out / 'subnet.pth').write_bytes(b'keep me')
    with pytest.raises(FileExistsError, match='--force'):
        extract.main([config, ckpt, '--subnet', '1,1,1', str(out)])
    assert (out / 'subnet.pth').read_bytes() == b'keep me'

    # any backbone config: the original kept under mmst.SubnetBackbone
    st = Config(
        dict(
            model=dict(
                type='mmst.StimulativeTraining',
                architecture=dict(
                    type='ImageClassifier',
                    backbone=dict(type='ResNetV1c', depth=50, frozen_stages=1),
                ),
                elastic_stages=['layer1', 'layer2', 'layer3', 'layer4'],
            ),
            val_cfg=dict(type='mmst.SubnetValLoop', subnets=['smallest']),
        )
    )
    fixed = subnet_config(st, [2, 3, 5, 2], 'sub.pth')
    assert fixed.model.type == 'ImageClassifier'
    assert fixed.model.backbone == dict(
        type='mmst.SubnetBackbone',
        backbone=dict(type='ResNetV1c', depth=50, frozen_stages=1),
        subnet=[2, 3, 5, 2],
        elastic_stages=['layer1', 'layer2', 'layer3', 'layer4'],
    )
    assert fixed.val_cfg == dict(type='ValLoop')
    assert fixed.load_from == 'sub.pth'
    assert 'mmst' in fixed.custom_imports['imports']
    with pytest.raises(ValueError, match='fixed sub-network already'):
        subnet_config(fixed, [1, 1, 1, 1])


def test_stpp_finetune_closes_loafing(trained, loafing_result):
    """docs/usage.md, "ST++ from a checkpoint you already have": the
    loafing table probed the CT checkpoint (a plain mmpretrain classifier's
    keys, as a model-zoo checkpoint); ``tools/train.py`` fine-tunes it with
    the shipped config, shortened with the documented ``--cfg-options``,
    and validation reports the probed networks on the same images (same
    BN re-estimation) beside the cost.

    The sub-networks must gain while the main network holds. Measured in
    this test (500 test images; seeds 0, 1, 2 of the fixture's training
    and of the fine-tuning, ``randomness.seed``): 64 iterations lifted
    ``[1,1,1]`` by 9.6 / 19.4 / 3.4 points and ``[1,2,3]`` by 6.0 / 9.0 /
    5.6, a mean of 7.8 / 14.2 / 4.5; main +2.8 / -0.2 / +1.6. The control,
    the same run as CT (``model.num_subnets=0``): ``[1,1,1]`` -2.2 / +3.2 /
    -6.4, ``[1,2,3]`` -0.6 / +1.0 / -2.8, mean -1.4 / +2.1 / -4.6. The
    threshold on the mean, 3.0, lies between the control's best and ST++'s
    worst; no sub-network may lose.
    """
    root = trained['root']
    config = root / 'ft_fmnist.py'
    config.write_text(
        Path(trained['config'])
        .read_text()
        .replace(str(CT_CONFIG), str(FT_CONFIG))
        + f'val_cfg = dict(bn_recal_images={RECAL}, '
        'subnets=[[1, 1, 1], [1, 2, 3]])\n'
    )
    work, iters, warmup = root / 'ft', 64, 12  # a fifth: as measured
    run_tool(
        'train',
        config,
        '--work-dir',
        work,
        '--cfg-options',
        f'load_from={trained["ckpts"][1]}',
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}',
        f'param_scheduler.0.end={warmup}',
        f'param_scheduler.1.begin={warmup}',
        f'param_scheduler.1.end={iters}',
        f'param_scheduler.1.T_max={iters - warmup}',
    )
    (scalars,) = work.glob('*/vis_data/scalars.json')
    rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    after = next(r for r in rows if 'accuracy/top1' in r)
    probe, _ = loafing_result
    before = {n['name']: n['results']['E12'] for n in probe['networks']}
    key = 'accuracy/top1'
    gains = {
        name: after[f'subnet{name}/{key}'] - before[name]
        for name in ('[1,1,1]', '[1,2,3]')
    }
    assert before['main'] - before['[1,1,1]'] > 15.0, before  # it loafs
    assert sum(gains.values()) / 2 >= 3.0, (before, after)
    assert min(gains.values()) > 0.0, (before, after)
    assert after[key] >= before['main'] - 5.0, (before, after)

    (log,) = work.glob('*/*.log')
    assert f'Load checkpoint from {trained["ckpts"][1]}' in log.read_text()
    (cost,) = work.glob('*/cost.json')
    cost = json.loads(cost.read_text())
    assert cost['iters'] == iters and 1.2 < cost['flops_ratio'] < 3.0
    per_epoch = 1024 // BATCH
    assert cost['ct_epochs'] == pytest.approx(
        cost['flops_ratio'] * iters / per_epoch, rel=1e-12
    )
    assert after['cost/ct_epochs'] == cost['ct_epochs']


def test_logit_magnitude(tools, trained, loafing_result):
    result, _ = loafing_result
    out = trained['root'] / 'logits'
    res = tools['logits'].main(
        [trained['config'], *trained['ckpts'], '--labels', 'E1', 'E12']
        + ['--subnets', '1,1,1', '--bn-recal-images', str(RECAL)]
        + ['--out-dir', str(out), '--no-progress']
    )
    assert [n['name'] for n in res['networks']] == ['main', '[1,1,1]']
    for net in res['networks']:
        for label in ('E1', 'E12'):
            stats = net['stats'][label]
            assert stats['images'] == VAL_IMAGES
            assert stats['mean_l2'] > 0 and stats['std_l2'] >= 0
            # same pass, same BN statistics as the loafing table
            assert stats['top1'] == pytest.approx(
                _net(result, net['name'])['results'][label], abs=1e-4
            )
    assert json.loads((out / 'logit_magnitude.json').read_text()) == res
    png = (out / 'logit_magnitude.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n'

    with pytest.raises(ValueError, match='needs a classifier'):
        tools['logits'].check_classifier(nn.Linear(2, 2))


def test_tools_are_thin_and_import_no_tool_by_path():
    """Every tool under tools/ imports library code, never another tool
    (by path, by module name or through sys.path)."""
    tools_dir = REPO / 'tools'
    files = sorted(tools_dir.rglob('*.py'))
    stems = {f.stem for f in files}
    folders = {p.name for p in tools_dir.iterdir() if p.is_dir()}
    offenders = []
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name.split('.')[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [(node.module or '').split('.')[0]]
            elif isinstance(node, ast.Constant) and isinstance(
                node.value, str
            ):
                # a path naming a tool file or a tools/ folder
                text = node.value
                names = []
                if text in folders or (
                    text.endswith('.py') and Path(text).stem in stems
                ):
                    offenders.append(f'{path.name}: {text!r}')
                continue
            else:
                continue
            offenders += [
                f'{path.name}: import {n}' for n in names if n in stems
            ]
    assert not offenders, offenders
    # the analysis tools and the converter go through mmst.analysis and
    # mmst.deploy
    for path in (LOAFING, LOGITS, EXTRACT):
        text = path.read_text()
        assert re.search(r'from mmst\.(analysis|deploy) import', text), path


def test_old_max_images_spelling_warns(tools, capsys):
    """loafing.py's old --max-val-images still works, as --max-images
    (every analysis tool's spelling), with a warning on stderr."""
    args = tools['loafing'].parse_args(
        ['cfg.py', 'ckpt.pth', '--max-val-images', '5']
    )
    assert args.max_images == 5
    err = capsys.readouterr().err
    assert 'loafing: warning: --max-val-images is deprecated; use ' in err
    assert (
        tools['logits']
        .parse_args(['cfg.py', 'ckpt.pth', '--max-images', '7'])
        .max_images
        == 7
    )
