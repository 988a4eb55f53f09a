"""Loading for evaluation is strict (issue #24, item 1): ``tools/test.py``,
the analysis tools and ``mmst.apis`` refuse a checkpoint of another model
(a ResNet-18 classifier for the Fashion-MNIST ResNet-20 config), naming
the first keys of each kind, the checkpoint and the config, and refuse a
file that is no checkpoint in one line; ``--non-strict`` /
``strict=False`` load what fits and say what was skipped.

Before: ``tools/test.py`` printed 76 size-mismatch warnings, evaluated the
untrained model and exited 0; a text file gave a ``KeyError`` from deep in
torch's unpickler, a truncated file torch's paragraph after a traceback.
"""

from pathlib import Path

import pytest
import torch

from tests.test_distributed.common import (
    load_tool,
    require_fashion_mnist,
    tools_test,
)

REPO = Path(__file__).resolve().parents[2]
CT_CONFIG = REPO / 'configs/mmpretrain/fashion_mnist/resnet20_ct_fmnist.py'
ST_CONFIG = REPO / 'configs/mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py'
#: ResNet-18 (ImageNet layout, 10 classes) against the CIFAR ResNet-20.
R18_VS_R20 = '30 missing, 30 unexpected, 76 mis-shaped keys'
TEST_IMAGES = 40


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    """A ResNet-18 ``ImageClassifier`` checkpoint, a checkpoint of the
    ST++ ResNet-20 model (its plain keys), a text file and a truncated
    checkpoint."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmst.apis import prepare_config
    from mmst.registry import MODELS

    root = tmp_path_factory.mktemp('strict_loading')
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        r18 = MODELS.build(
            dict(
                type='mmpretrain.ImageClassifier',
                backbone=dict(type='mmpretrain.ResNet', depth=18),
                neck=dict(type='mmpretrain.GlobalAveragePooling'),
                head=dict(
                    type='mmpretrain.LinearClsHead',
                    num_classes=10,
                    in_channels=512,
                ),
            )
        )
    cfg = prepare_config(Config.fromfile(str(ST_CONFIG)))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        st = MODELS.build(cfg.model)
    paths = dict(
        resnet18=root / 'resnet18.pth',
        st=root / 'resnet20_stpp.pth',
        text=root / 'resnet20.txt',
        truncated=root / 'epoch_3.pth',
    )
    torch.save({'meta': {}, 'state_dict': r18.state_dict()}, paths['resnet18'])
    meta = dict(dataset_meta=dict(classes=list('abcdefghij')))
    torch.save({'meta': meta, 'state_dict': st.state_dict()}, paths['st'])
    paths['text'].write_text('top-1 91.3 after 200 epochs\n')
    data = paths['st'].read_bytes()
    paths['truncated'].write_bytes(data[: len(data) // 2])
    return {k: str(v) for k, v in paths.items()}


def _data_options(*splits: str) -> list:
    root = require_fashion_mnist()
    options = [f'{s}_dataloader.dataset.data_root={root}' for s in splits]
    return options + [f'test_dataloader.dataset.indices={TEST_IMAGES}']


# -- tools/test.py -----------------------------------------------------------
def test_tools_test_refuses_another_models_checkpoint(files, tmp_path, capsys):
    work = tmp_path / 'work'
    with pytest.raises(SystemExit) as exc:
        tools_test(
            CT_CONFIG,
            files['resnet18'],
            work,
            '--cfg-options',
            *_data_options('test'),
        )
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert (
        f'tools/test.py: error: checkpoint {files["resnet18"]} does not fit '
        f'the ImageClassifier model of {CT_CONFIG}: {R18_VS_R20}\n'
    ) in err
    assert (
        '  missing (30): backbone.layer1.2.conv1.weight, '
        'backbone.layer1.2.bn1.weight, backbone.layer1.2.bn1.bias, '
        'backbone.layer1.2.bn1.running_mean, '
        'backbone.layer1.2.bn1.running_var (+25 more)\n'
    ) in err
    assert '  unexpected (30): backbone.layer4.0.conv1.weight, ' in err
    assert (
        '  mis-shaped (76): backbone.conv1.weight (64, 3, 7, 7) in the '
        'checkpoint, (16, 1, 3, 3) in the model; '
    ) in err
    assert 'pass --non-strict' in err
    assert not list(work.glob('*/*.json'))  # nothing was evaluated


@pytest.mark.parametrize(
    'name, what',
    [
        ('text', "a text file, not a PyTorch checkpoint (it starts with 'top"),
        ('truncated', 'a truncated or corrupted PyTorch checkpoint (a zip'),
        ('directory', 'a directory, not a checkpoint file'),
    ],
)
def test_tools_test_unreadable_file_is_one_line(
    files, tmp_path, capsys, name, what
):
    path = str(tmp_path) if name == 'directory' else files[name]
    work = tmp_path / 'work'
    with pytest.raises(SystemExit) as exc:
        tools_test(CT_CONFIG, path, work)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    lines = [line for line in err.splitlines() if 'tools/test.py' in line]
    assert len(lines) == 1 and lines[0] == err.strip().splitlines()[-1], err
    assert lines[0].startswith(
        f'tools/test.py: error: cannot read {path}: {what}'
    ), lines[0]
    assert not work.exists()  # refused before the Runner made the work dir


def test_tools_test_st_checkpoint_and_non_strict(files, tmp_path):
    """The ST checkpoint (plain keys) passes the strict check of the ST
    config; ``--non-strict`` evaluates the ResNet-18 checkpoint and logs
    what it skipped."""
    metrics = tools_test(
        ST_CONFIG,
        files['st'],
        tmp_path / 'st',
        '--cfg-options',
        *_data_options('test'),
    )
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0

    work = tmp_path / 'non_strict'
    metrics = tools_test(
        CT_CONFIG,
        files['resnet18'],
        work,
        '--non-strict',
        '--cfg-options',
        *_data_options('test'),
    )
    assert 'accuracy/top1' in metrics
    (log,) = work.glob('*/*.log')
    text = log.read_text()
    assert (
        'non-strict loading (--non-strict / strict=False): checkpoint '
        f'{files["resnet18"]} does not fit the ImageClassifier model of '
        f"{CT_CONFIG}; skipped {R18_VS_R20} (the model's own values kept):"
    ) in text
    assert '  mis-shaped (76): backbone.conv1.weight (64, 3, 7, 7)' in text


# -- an analysis tool --------------------------------------------------------
def test_loafing_tool_is_strict(files, tmp_path):
    loafing = load_tool('analysis_tools/loafing')
    args = [
        '--subnets',
        'smallest',
        '--bn-recal-images',
        '0',
        '--max-val-images',
        str(TEST_IMAGES),
        '--no-progress',
        '--out-dir',
        str(tmp_path / 'out'),
        '--cfg-options',
        *_data_options('val', 'train'),
    ]
    with pytest.raises(ValueError) as exc:
        loafing.main([str(CT_CONFIG), files['resnet18'], *args])
    message = str(exc.value)
    assert message.startswith(
        f'checkpoint {files["resnet18"]} does not fit the ImageClassifier '
        f'model of {CT_CONFIG}: {R18_VS_R20}\n'
    ), message
    assert '(+71 more)' in message
    assert not (tmp_path / 'out').exists()

    with pytest.raises(ValueError) as exc:
        loafing.main([str(CT_CONFIG), files['text'], *args])
    assert str(exc.value) == (
        f'cannot read {files["text"]}: a text file, not a PyTorch '
        "checkpoint (it starts with 'top-1 91.3 after 200 epochs')"
    )

    result = loafing.main(
        [str(CT_CONFIG), files['resnet18'], '--non-strict', *args]
    )
    assert result['strict'] is False
    assert [n['name'] for n in result['networks']] == ['main', '[1,1,1]']


# -- mmst.apis ---------------------------------------------------------------
def test_api_init_model_is_strict(files):
    from mmst.apis import init_model

    with pytest.raises(ValueError) as exc:
        init_model(CT_CONFIG, files['resnet18'])
    assert type(exc.value).__name__ == 'CheckpointMismatchError'
    assert str(exc.value).startswith(
        f'checkpoint {files["resnet18"]} does not fit the ImageClassifier '
        f'model of {CT_CONFIG}: {R18_VS_R20}'
    )
    with pytest.raises(ValueError) as exc:
        init_model(CT_CONFIG, files['truncated'])
    message = str(exc.value)
    assert '\n' not in message
    assert message.startswith(
        f'cannot read {files["truncated"]}: a truncated or corrupted '
        'PyTorch checkpoint'
    )

    # strict=False: what fits is loaded (the 10-class head bias), the rest
    # keeps its initial values
    model = init_model(CT_CONFIG, files['resnet18'], strict=False)
    r18 = torch.load(files['resnet18'], map_location='cpu')['state_dict']
    assert torch.equal(model.head.fc.bias, r18['head.fc.bias'])
    assert model.backbone.conv1.weight.shape == (16, 1, 3, 3)

    # the ST checkpoint's plain keys: the plain model, exactly
    model = init_model(ST_CONFIG, files['st'])
    assert type(model).__name__ == 'ImageClassifier' and not model.training
    saved = torch.load(files['st'], map_location='cpu')
    assert model.dataset_meta == saved['meta']['dataset_meta']
    own = model.state_dict()
    assert set(own) == set(saved['state_dict'])
    for key, value in saved['state_dict'].items():
        assert torch.equal(own[key], value), key


@pytest.mark.parametrize(
    'tool, extra',
    [
        ('analysis_tools/logit_magnitude', ['--no-progress']),
        ('analysis_tools/depth_menu', ['--no-progress']),
        ('model_converters/extract_subnet', ['--subnet', 'smallest']),
    ],
)
def test_other_tools_refuse_a_text_file_first(files, tmp_path, tool, extra):
    """The other analysis tools read checkpoints the same way: a text file
    is one line, before a model is built or an output is written."""
    out = tmp_path / 'out'
    where = [str(out)] if tool.endswith('extract_subnet') else []
    where += [] if where else ['--out-dir', str(out)]
    with pytest.raises(ValueError) as exc:
        load_tool(tool).main(
            [str(CT_CONFIG), files['text'], *where, *extra]
            + ['--non-strict', '--cfg-options', *_data_options('val')]
        )
    assert str(exc.value) == (
        f'cannot read {files["text"]}: a text file, not a PyTorch '
        "checkpoint (it starts with 'top-1 91.3 after 200 epochs')"
    )
    assert not out.exists()
