"""mmst/converters/checkpoint_io.py: a file that is not a readable
checkpoint is one line naming it and what it is not; a state dict that
does not fit the model is refused naming the first keys of each kind, the
checkpoint and the config, unless loading is non-strict, which loads what
fits and logs the rest. Real files written here, real models."""

import argparse
import logging
import os
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from mmst.converters.checkpoint_io import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    load_checkpoint,
    load_state_dict,
    read_checkpoint,
)

REPO = Path(__file__).resolve().parents[2]
ST_CONFIG = REPO / 'configs/mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py'


def _tiny() -> nn.Module:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(1, 4, 3),
            bn=nn.BatchNorm2d(4),
            fc=nn.Linear(4, 2),
        )
    )


def _bad_files(root: Path) -> dict:
    """Name -> (path, what the one-line message must say)."""
    good = root / 'good.pth'
    torch.save({'state_dict': _tiny().state_dict()}, good)
    data = good.read_bytes()
    files = {}

    def add(name, content, phrase):
        path = root / name
        if content is not None:
            path.write_bytes(content)
        files[name] = (path, phrase)

    add(
        'notes.txt',
        b'epoch 12: top-1 91.3\nepoch 13: top-1 91.5\n',
        "a text file, not a PyTorch checkpoint (it starts with 'epoch 12: "
        "top-1 91.3')",
    )
    add(
        'truncated.pth',
        data[: len(data) // 2],
        'a truncated or corrupted PyTorch checkpoint (a zip archive of '
        f'{len(data) // 2} bytes; torch.load: RuntimeError: '
        'PytorchStreamReader failed reading zip archive',
    )
    legacy = root / 'legacy_full.pth'
    torch.save(
        {'state_dict': _tiny().state_dict()},
        legacy,
        _use_new_zipfile_serialization=False,
    )
    add(
        'legacy_truncated.pth',
        legacy.read_bytes()[:300],
        'not a readable PyTorch checkpoint (a pickle stream of 300 bytes: '
        'truncated, corrupted or not written by torch.save',
    )
    add(
        'empty.pth',
        b'',
        'an empty file (0 bytes), not a PyTorch checkpoint',
    )
    add('image.png', b'\x89PNG\r\n\x1a\n' + bytes(range(40)), None)
    files['image.png'] = (
        files['image.png'][0],
        'not a PyTorch checkpoint (it starts with bytes 89 50 4e 47 0d 0a '
        '1a 0a; torch.load:',
    )
    (root / 'work_dir').mkdir()
    add('work_dir', None, 'a directory, not a checkpoint file')
    add('missing.pth', None, 'no such file')
    pickled = root / 'pickled.pth'
    torch.save({'args': argparse.Namespace(lr=0.1)}, pickled)
    add(
        'pickled.pth',
        pickled.read_bytes(),
        'a PyTorch checkpoint holding Python objects that '
        'torch.load(weights_only=True) refuses (Unsupported global: GLOBAL '
        'argparse.Namespace',
    )
    torch.save(
        {'args': argparse.Namespace(lr=0.1)},
        pickled,
        _use_new_zipfile_serialization=False,
    )
    add(
        'pickled_legacy.pth',
        pickled.read_bytes(),
        files['pickled.pth'][1],
    )
    add(
        'garbage.pth',
        b'\x80\x02' + bytes(range(126, 256)),
        'not a readable PyTorch checkpoint (a pickle stream of 132 bytes: '
        'truncated, corrupted or not written by torch.save; torch.load: '
        'Unsupported operand 126)',
    )
    tensor = root / 'tensor_only.pth'
    torch.save(torch.zeros(3), tensor)
    add(
        'tensor_only.pth',
        tensor.read_bytes(),
        "it holds a Tensor, not a checkpoint (a dict with a 'state_dict', "
        'or a state dict)',
    )
    return files


BAD = [
    'notes.txt',
    'truncated.pth',
    'legacy_truncated.pth',
    'empty.pth',
    'image.png',
    'work_dir',
    'missing.pth',
    'pickled.pth',
    'pickled_legacy.pth',
    'garbage.pth',
    'tensor_only.pth',
]


@pytest.fixture(scope='module')
def bad_files(tmp_path_factory):
    return _bad_files(tmp_path_factory.mktemp('bad_checkpoints'))


@pytest.mark.parametrize('name', BAD)
def test_unreadable_file_is_one_line(bad_files, name):
    path, phrase = bad_files[name]
    model = _tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(model, path)
    message = str(exc.value)
    assert '\n' not in message, message
    assert message.startswith(f'cannot read {path}: '), message
    assert phrase in message, message
    assert not isinstance(exc.value, CheckpointMismatchError)
    # a missing file is also what callers catch as FileNotFoundError
    assert isinstance(exc.value, FileNotFoundError) == (name == 'missing.pth')
    assert isinstance(exc.value, ValueError)
    for key, value in model.state_dict().items():  # nothing loaded
        assert torch.equal(value, before[key]), key


def test_readable_checkpoints(tmp_path):
    """MMEngine's layout, a bare state dict, the legacy format and a
    DataParallel ``module.`` prefix (stripped as MMEngine's Runner does)
    load strictly; a missing BN counter is ignored, as in MMEngine."""
    source = _tiny()
    with torch.no_grad():
        for p in source.parameters():
            p.add_(1.0)
    state = source.state_dict()
    variants = {
        'mmengine.pth': {'meta': {'epoch': 3}, 'state_dict': state},
        'bare.pth': state,
        'module.pth': {
            'state_dict': OrderedDict(
                (f'module.{k}', v) for k, v in state.items()
            )
        },
        'no_counter.pth': {
            'state_dict': {
                k: v
                for k, v in state.items()
                if not k.endswith('num_batches_tracked')
            }
        },
    }
    for name, obj in variants.items():
        torch.save(obj, tmp_path / name)
    torch.save(
        variants['mmengine.pth'],
        tmp_path / 'legacy.pth',
        _use_new_zipfile_serialization=False,
    )
    for name in [*variants, 'legacy.pth']:
        model = _tiny()
        checkpoint = load_checkpoint(model, tmp_path / name)
        assert isinstance(checkpoint, dict)
        for key, value in source.named_parameters():
            assert torch.equal(model.state_dict()[key], value), (name, key)
    assert read_checkpoint(tmp_path / 'mmengine.pth')['meta'] == {'epoch': 3}


def _mismatched_state() -> dict:
    """Another model's keys: conv wider, bn missing, an extra layer."""
    other = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(1, 8, 3),
            fc=nn.Linear(4, 2),
            extra=nn.Linear(2, 2),
        )
    )
    return other.state_dict()


def test_mismatch_names_keys_checkpoint_and_config():
    model = _tiny()
    with pytest.raises(CheckpointMismatchError) as exc:
        load_state_dict(
            model,
            _mismatched_state(),
            checkpoint='other.pth',
            config='configs/tiny.py',
        )
    lines = str(exc.value).splitlines()
    assert lines[0] == (
        'checkpoint other.pth does not fit the Sequential model of '
        'configs/tiny.py: 4 missing, 2 unexpected, 2 mis-shaped keys'
    )
    assert lines[1] == (
        '  missing (4): bn.weight, bn.bias, bn.running_mean, bn.running_var'
    )
    assert lines[2] == '  unexpected (2): extra.weight, extra.bias'
    assert lines[3] == (
        '  mis-shaped (2): conv.weight (8, 1, 3, 3) in the checkpoint, '
        '(4, 1, 3, 3) in the model; conv.bias (8,) in the checkpoint, (4,) '
        'in the model'
    )
    assert '--non-strict (tools) or strict=False (API)' in lines[4]
    mismatch = exc.value.mismatch
    assert mismatch.unexpected == ['extra.weight', 'extra.bias']
    assert mismatch.mis_shaped[0] == (
        'conv.weight',
        (8, 1, 3, 3),
        (4, 1, 3, 3),
    )


def test_more_than_five_keys_are_counted():
    state = {f'layer{i}.weight': torch.zeros(1) for i in range(8)}
    with pytest.raises(CheckpointMismatchError) as exc:
        load_state_dict(nn.Linear(1, 1), state)
    message = str(exc.value)
    assert message.startswith(
        'the state dict does not fit the Linear model: 2 missing, 8 '
        'unexpected, 0 mis-shaped keys'
    )
    assert (
        'unexpected (8): layer0.weight, layer1.weight, layer2.weight, '
        'layer3.weight, layer4.weight (+3 more)'
    ) in message


def test_non_strict_loads_what_fits_and_logs_the_rest(caplog):
    model = _tiny()
    state = _mismatched_state()
    logger = logging.getLogger('mmst.test_checkpoint_io')
    with caplog.at_level(logging.WARNING, logger=logger.name):
        mismatch = load_state_dict(
            model, state, strict=False, checkpoint='other.pth', logger=logger
        )
    assert len(mismatch.missing) == 4 and len(mismatch.mis_shaped) == 2
    assert torch.equal(model.fc.weight, state['fc.weight'])  # what fits
    assert model.conv.weight.shape == (4, 1, 3, 3)  # kept
    (record,) = caplog.records
    text = record.getMessage()
    assert text.startswith(
        'non-strict loading (--non-strict / strict=False): checkpoint '
        'other.pth does not fit the Sequential model; skipped 4 missing, 2 '
        "unexpected, 2 mis-shaped keys (the model's own values kept):"
    ), text
    assert 'unexpected (2): extra.weight, extra.bias' in text


def test_st_checkpoint_plain_keys_load_strictly(tmp_path):
    """An ST model's checkpoint holds the architecture's plain keys: they
    load strictly into the ST model (its load hook adds
    ``architecture.``) and into the plain model of ``plain_config``."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmst.apis import plain_config, prepare_config
    from mmst.registry import MODELS

    cfg = prepare_config(Config.fromfile(str(ST_CONFIG)))
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        st = MODELS.build(cfg.model)
        plain = MODELS.build(plain_config(cfg).model)
        fresh_st = MODELS.build(cfg.model)
    state = st.state_dict()
    assert not any(k.startswith('architecture.') for k in state)
    path = tmp_path / 'st.pth'
    torch.save({'meta': {}, 'state_dict': state}, path)
    for model in (plain, fresh_st):
        load_checkpoint(model, path, config=str(ST_CONFIG))  # strict
        own = model.state_dict()
        assert set(own) == set(state)
        for key, value in state.items():
            assert torch.equal(own[key], value), key
    # an ST model's keys with the prefix (e.g. saved another way) are not
    # the plain model's: refused, naming them
    prefixed = {f'architecture.{k}': v for k, v in state.items()}
    with pytest.raises(CheckpointMismatchError, match='unexpected'):
        load_state_dict(plain, prefixed)


def test_path_like_and_expanded_user(tmp_path, monkeypatch):
    torch.save({'state_dict': _tiny().state_dict()}, tmp_path / 'a.pth')
    monkeypatch.setenv('HOME', str(tmp_path))
    assert load_checkpoint(_tiny(), '~/a.pth')
    assert load_checkpoint(_tiny(), os.fspath(tmp_path / 'a.pth'))
    with pytest.raises(CheckpointNotFoundError, match='no such file'):
        load_checkpoint(_tiny(), '~/b.pth')
