"""tools/model_converters/st_to_mmpretrain.py: the authors' ResNet-50
checkpoint becomes an mmpretrain checkpoint that computes the same logits,
and anything else is refused without leaving a file behind.

The authors' network is rebuilt here from docs/released_weights.md ("Key
mapping"):
``features`` = [stem, 16 bottlenecks], ``classifier`` = [Linear].
"""

import argparse
import copy
import os
import pickle
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import pytest
import torch
import torch.nn as nn

from mmst.converters import (
    ConversionError,
    convert_checkpoint,
    convert_st_state_dict,
    load_authors_checkpoint,
    save_checkpoint_atomic,
)
from tests.test_distributed.common import load_tool

REPO = Path(__file__).resolve().parents[2]
TOOL = REPO / 'tools' / 'model_converters' / 'st_to_mmpretrain.py'
NUM_CLASSES = 10


class AuthorsBottleneck(nn.Module):
    """``body`` = 1x1 conv, BN, ReLU, 3x3 conv (stride), BN, ReLU, 1x1 conv,
    BN; ``shortcut`` = 1x1 conv (stride), BN when the shape changes; the sum
    goes through a ReLU."""

    def __init__(self, in_ch: int, planes: int, stride: int) -> None:
        super().__init__()
        out_ch = planes * 4
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, planes, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(planes),
            nn.ReLU(inplace=True),
            nn.Conv2d(planes, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.shortcut: Optional[nn.Sequential] = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False),
                nn.BatchNorm2d(out_ch),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(self.body(x) + identity)


class AuthorsResNet(nn.Module):
    """The authors' flat ResNet: ``features`` and ``classifier``."""

    def __init__(
        self,
        stage_blocks: Sequence[int] = (3, 4, 6, 3),
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        layers = [
            nn.Sequential(
                nn.Conv2d(3, 64, 7, 2, 3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1),
            )
        ]
        in_ch = 64
        for stage, num_blocks in enumerate(stage_blocks):
            planes = 64 * 2**stage
            for block in range(num_blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(AuthorsBottleneck(in_ch, planes, stride))
                in_ch = planes * 4
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Linear(in_ch, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Random affine parameters and running statistics in every BN, so a
    mixed-up BN tensor changes the logits."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.rand(n, generator=gen) * 0.4 + 0.3)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.num_batches_tracked.fill_(
                    int(torch.randint(1, 1000, (1,), generator=gen))
                )


def _authors_checkpoint(model: nn.Module) -> Dict:
    """What the authors' ``train.py`` saves around a DataParallel model."""
    state_dict = {f'module.{k}': v for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=0.2,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
    ).state_dict()
    # One momentum buffer stands for the real per-parameter state.
    optimizer['state'] = {0: {'momentum_buffer': torch.zeros(64, 3, 7, 7)}}
    return {
        'epoch': 200,
        'state_dict': state_dict,
        'best_acc1': torch.tensor(80.5),
        'best_acc5': 95.25,
        'optimizer': optimizer,
    }


def _run_tool(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO), env.get('PYTHONPATH', '')]
    ).rstrip(os.pathsep)
    return subprocess.run(
        [sys.executable, str(TOOL), *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _build_mmpretrain_resnet50() -> nn.Module:
    pytest.importorskip('mmpretrain')
    from mmengine.hub import get_config
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    from mmpretrain.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = get_config('mmpretrain::resnet/resnet50_8xb32_in1k.py')
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.backbone.init_cfg = None
    model_cfg.head.num_classes = NUM_CLASSES
    model_cfg.init_cfg = None
    # in mmpretrain's scope whatever scope an earlier test left current
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        return MODELS.build(model_cfg)


@pytest.fixture(scope='module')
def authors(tmp_path_factory) -> Tuple[nn.Module, Path]:
    """The authors' ResNet-50 (random weights, eval mode) and its
    checkpoint file as ``train.py`` writes it."""
    torch.manual_seed(0)
    model = AuthorsResNet()
    _randomize_bn(model)
    model.eval()
    path = tmp_path_factory.mktemp('authors') / 'st_r50.pth.tar'
    torch.save(_authors_checkpoint(model), path)
    return model, path


@pytest.fixture(scope='module')
def converted(authors, tmp_path_factory) -> Tuple[Path, str]:
    """The CLI's output for the authors' checkpoint, and its stdout."""
    _, src = authors
    dst = tmp_path_factory.mktemp('converted') / 'st_r50_mmpretrain.pth'
    result = _run_tool(src, dst)
    assert result.returncode == 0, result.stderr
    return dst, result.stdout


def _assert_state_dicts_equal(a: Dict, b: Dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_cli_output_matches_authors_logits(authors, converted):
    model, src = authors
    dst, stdout = converted
    assert 'ResNet-50' in stdout and 'epoch 200' in stdout

    ckpt = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(ckpt) == {'meta', 'state_dict'}
    assert ckpt['meta']['depth'] == 50
    assert ckpt['meta']['num_classes'] == NUM_CLASSES
    assert ckpt['meta']['source_best_acc1'] == 80.5  # exact in float32
    state_dict = ckpt['state_dict']
    assert 'backbone.conv1.weight' in state_dict
    assert 'backbone.layer4.2.bn3.num_batches_tracked' in state_dict
    assert 'head.fc.bias' in state_dict

    mm_model = _build_mmpretrain_resnet50()
    mm_model.load_state_dict(state_dict, strict=True)
    mm_model.eval().double()
    reference = copy.deepcopy(model).double().eval()

    inputs = torch.randn(
        2, 3, 64, 64, generator=torch.Generator().manual_seed(1)
    ).double()
    with torch.no_grad():
        expected = reference(inputs)
        logits = mm_model(inputs, mode='tensor')
    assert logits.shape == (2, NUM_CLASSES)
    assert expected.abs().max() > 1e-2  # not a degenerate comparison
    # Exact: mmpretrain's ResNet-50 runs the same layers (conv, BN, ReLU,
    # shortcut sum, average pool, linear) on the same shapes in the same
    # order as the authors' network, so the same float64 kernels.
    assert torch.equal(logits, expected), (logits - expected).abs().max()


def test_state_dict_variants_convert_alike(authors, converted, tmp_path):
    """No ``module.`` prefix, a ``model`` key and a bare state dict give the
    same result as the authors' DataParallel checkpoint."""
    model, _ = authors
    reference = torch.load(
        converted[0], map_location='cpu', weights_only=True
    )['state_dict']
    plain = model.state_dict()
    prefixed = {f'module.{k}': v for k, v in plain.items()}
    variants = {
        'no_module.pth': ({'state_dict': plain, 'epoch': 3}, plain),
        'model_key.pth': ({'model': prefixed}, prefixed),
        'bare.pth': (plain, plain),
    }
    for name, (obj, stored) in variants.items():
        src = tmp_path / name
        torch.save(obj, src)
        assert list(load_authors_checkpoint(src)) == list(stored)
        dst = tmp_path / f'out_{name}'
        convert_checkpoint(src, dst)
        out = torch.load(dst, map_location='cpu', weights_only=True)
        _assert_state_dicts_equal(out['state_dict'], reference)
        src.unlink()
        dst.unlink()

    # In memory, and with an explicit depth.
    _assert_state_dicts_equal(
        convert_st_state_dict(plain, depth=50), reference
    )


def test_backbone_only_loads_into_mmdet_resnet(authors, converted, tmp_path):
    pytest.importorskip('mmdet')
    from mmdet.models.backbones import ResNet as DetResNet

    _, src = authors
    dst = tmp_path / 'st_r50_backbone.pth'
    meta = convert_checkpoint(src, dst, backbone_only=True)
    assert meta['backbone_only'] and meta['num_classes'] is None
    backbone_sd = torch.load(dst, map_location='cpu', weights_only=True)[
        'state_dict'
    ]
    assert backbone_sd and all(k.startswith('backbone.') for k in backbone_sd)

    full = torch.load(converted[0], map_location='cpu', weights_only=True)[
        'state_dict'
    ]
    _assert_state_dicts_equal(
        backbone_sd,
        {k: v for k, v in full.items() if k.startswith('backbone.')},
    )

    det_backbone = DetResNet(
        depth=50,
        init_cfg=dict(
            type='Pretrained', checkpoint=str(dst), prefix='backbone.'
        ),
    )
    det_backbone.init_weights()
    # Pretrained init loads non-strictly: check every tensor arrived.
    det_sd = det_backbone.state_dict()
    assert set(det_sd) == {k[len('backbone.') :] for k in backbone_sd}
    for key, value in det_sd.items():
        assert torch.equal(value, backbone_sd[f'backbone.{key}']), key


def _files(folder: Path) -> set:
    return {p.name for p in folder.iterdir()}


def _load_tool():
    """The CLI module, for in-process runs (a subprocess costs seconds)."""
    return load_tool('model_converters/st_to_mmpretrain')


def test_foreign_checkpoint_is_refused_by_cli(tmp_path, capsys):
    """A torchvision-style ResNet state dict: exit status 1, a message
    naming missing and unexpected keys, no traceback, no output file."""
    import torchvision

    src = tmp_path / 'torchvision_r18.pth'
    torch.save(
        torchvision.models.resnet18(num_classes=NUM_CLASSES).state_dict(), src
    )
    dst = tmp_path / 'out.pth'
    assert _load_tool().main([str(src), str(dst)]) == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith('st_to_mmpretrain: error: ')
    assert 'missing keys' in stderr
    assert 'features.0.0.weight' in stderr
    assert 'unexpected keys' in stderr
    assert 'conv1.weight' in stderr
    assert _files(tmp_path) == {src.name}


def test_incomplete_checkpoint_is_refused(authors, tmp_path):
    model, _ = authors
    state_dict = {f'module.{k}': v for k, v in model.state_dict().items()}
    del state_dict['module.features.5.body.3.weight']
    state_dict['module.features.5.body.3.bias'] = torch.zeros(128)
    src = tmp_path / 'incomplete.pth'
    torch.save({'state_dict': state_dict}, src)
    dst = tmp_path / 'out.pth'
    with pytest.raises(ConversionError) as err:
        convert_checkpoint(src, dst)
    msg = str(err.value)
    assert 'missing keys (1): features.5.body.3.weight' in msg
    assert 'unexpected keys (1): features.5.body.3.bias' in msg
    assert _files(tmp_path) == {src.name}


def test_shape_mismatch_and_depth_errors(authors):
    model, _ = authors
    state_dict = dict(model.state_dict())
    state_dict['features.2.body.0.weight'] = torch.zeros(64, 128, 1, 1)
    with pytest.raises(ConversionError, match='shape mismatches') as err:
        convert_st_state_dict(state_dict)
    assert (
        'features.2.body.0.weight: got (64, 128, 1, 1), expected '
        '(64, 256, 1, 1)'
    ) in str(err.value)

    # ResNet-50 weights announced as ResNet-101: the missing blocks listed.
    with pytest.raises(ConversionError, match='ResNet-101') as err:
        convert_st_state_dict(model.state_dict(), depth=101)
    assert 'features.17.body.0.weight' in str(err.value)
    with pytest.raises(ConversionError, match='unsupported depth'):
        convert_st_state_dict(model.state_dict(), depth=34)


def test_resnet101_layout_is_inferred():
    """Depth inference and the stage mapping for 101 (no forward pass)."""
    state_dict = AuthorsResNet((3, 4, 23, 3), num_classes=2).state_dict()
    out = convert_st_state_dict(state_dict)
    assert 'backbone.layer3.22.conv3.weight' in out
    assert 'backbone.layer4.0.downsample.0.weight' in out
    assert torch.equal(
        out['backbone.layer3.22.conv3.weight'],
        state_dict['features.30.body.6.weight'],
    )
    assert torch.equal(
        out['backbone.layer4.0.downsample.1.running_var'],
        state_dict['features.31.shortcut.1.running_var'],
    )


def test_missing_bn_counters_are_filled(authors):
    model, _ = authors
    state_dict = {
        k: v
        for k, v in model.state_dict().items()
        if not k.endswith('num_batches_tracked')
    }
    out = convert_st_state_dict(state_dict, with_head=False)
    assert out['backbone.bn1.num_batches_tracked'].item() == 0
    assert not any(k.startswith('head.') for k in out)


def test_truncated_file_is_refused(authors, tmp_path):
    _, good = authors
    src = tmp_path / 'truncated.pth'
    with open(good, 'rb') as f:
        src.write_bytes(f.read(4 << 20))
    dst = tmp_path / 'out.pth'
    with pytest.raises(ConversionError, match='cannot read') as err:
        convert_checkpoint(src, dst)
    assert 'truncated or corrupted' in str(err.value)
    assert _files(tmp_path) == {src.name}


def test_existing_destination_needs_force(authors, tmp_path):
    _, src = authors
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'keep me')
    with pytest.raises(ConversionError, match='already exists.*--force'):
        convert_checkpoint(src, dst)
    assert dst.read_bytes() == b'keep me'
    assert _files(tmp_path) == {dst.name}

    convert_checkpoint(src, dst, backbone_only=True, force=True)
    out = torch.load(dst, map_location='cpu', weights_only=True)
    assert out['meta']['backbone_only']
    assert _files(tmp_path) == {dst.name}


def test_failed_save_leaves_nothing(tmp_path):
    dst = tmp_path / 'out.pth'
    with pytest.raises((pickle.PicklingError, AttributeError)):
        save_checkpoint_atomic({'fn': lambda: None}, dst)
    assert _files(tmp_path) == set()


def test_pickled_objects_need_allow_pickle(tmp_path):
    """A checkpoint holding an arbitrary Python object is not loaded with
    weights_only=False unless asked."""
    src = tmp_path / 'pickled.pth'
    torch.save({'state_dict': {}, 'args': argparse.Namespace(lr=0.2)}, src)
    with pytest.raises(ConversionError, match='--allow-pickle'):
        load_authors_checkpoint(src)
    with pytest.warns(UserWarning, match='weights_only=False'):
        assert load_authors_checkpoint(src, allow_pickle=True) == {}


def test_temp_file_of_a_killed_write_is_removed_by_the_next(tmp_path):
    """kill -9 during the write leaves the hidden temporary file (no
    cleanup code can run); it carries the writer's host and PID, and the
    next write of the same destination removes it, saying so. Before: a
    ``.out.pth.<random>.tmp`` stayed for good, though
    docs/released_weights.md said an interrupted conversion leaves none."""
    dst = tmp_path / 'out.pth'
    script = Path(__file__).parent / 'scripts' / 'slow_save.py'
    proc = subprocess.Popen(
        [sys.executable, str(script), str(dst)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == 'WRITING'
        (temp,) = _files(tmp_path)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)  # reaped: the PID runs no more
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert temp.startswith(f'.out.pth.{socket.gethostname()}.{proc.pid}.')
    assert temp.endswith('.tmp')
    assert _files(tmp_path) == {temp}  # no out.pth: the write never ended

    # a temporary file of a running process (this one), and one of
    # another destination, are left alone
    running = tmp_path / f'.out.pth.{socket.gethostname()}.{os.getpid()}.x.tmp'
    other = tmp_path / f'.other.pth.{socket.gethostname()}.{proc.pid}.x.tmp'
    running.write_bytes(b'')
    other.write_bytes(b'')
    with pytest.warns(UserWarning) as caught:
        save_checkpoint_atomic({'x': torch.ones(2)}, dst)
    assert [str(w.message) for w in caught] == [
        f'removed {tmp_path / temp}: a temporary file of out.pth left by '
        f'process {proc.pid}, which no longer runs (killed while writing)'
    ]
    assert _files(tmp_path) == {'out.pth', running.name, other.name}
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    assert torch.equal(saved['x'], torch.ones(2))
