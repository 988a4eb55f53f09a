"""The documented tiny-ImageNet run (docs/method.md, the shell block after
``<!-- tiny-imagenet-run -->``), executed as written: it writes a tiny
ImageNet and trains the ST++ A2 config, with its real pipeline
(UniformAugment included) and model, for two iterations."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from mmengine.config import Config

REPO = Path(__file__).resolve().parents[2]
MARKER = '<!-- tiny-imagenet-run -->'


def _documented_block() -> str:
    text = (REPO / 'docs/method.md').read_text()
    assert text.count(MARKER) == 1, MARKER
    match = re.match(r'\s*```shell\n(.*?)```', text.split(MARKER)[1], re.S)
    assert match, f'no shell block after {MARKER}'
    return match.group(1)


def test_block_is_the_acceptance_command():
    block = _documented_block()
    assert (
        'python tools/misc/make_tiny_imagenet.py data/tiny_imagenet' in block
    )
    assert (
        'python tools/train.py configs/mmpretrain/imagenet/'
        'resnet50_stpp-a2_in1k.py' in block
    )


def test_documented_run(tmp_path):
    # run from a folder that looks like the repository root, so that the
    # block's relative data/ and work_dirs/ land in tmp_path
    for name in ('tools', 'configs'):
        (tmp_path / name).symlink_to(REPO / name)
    env = dict(os.environ)
    env['PATH'] = os.pathsep.join(
        [str(Path(sys.executable).parent), env['PATH']]
    )
    result = subprocess.run(
        ['bash', '-e', '-c', _documented_block()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, (
        result.stdout[-3000:] + result.stderr[-3000:]
    )

    work_dir = tmp_path / 'work_dirs/tiny_imagenet_a2'
    cfg = Config.fromfile(str(work_dir / 'resnet50_stpp-a2_in1k.py'))
    assert [t['type'] for t in cfg.train_dataloader.dataset.pipeline] == [
        'LoadImageFromFile',
        'RandomResizedCrop',
        'RandomFlip',
        'ColorJitter',
        'mmst.UniformAugment',
        'PackInputs',
    ]
    assert cfg.model.architecture.backbone.zero_init_residual is False
    (scalars,) = work_dir.glob('*/vis_data/scalars.json')
    records = [json.loads(line) for line in scalars.read_text().splitlines()]
    train = [r for r in records if 'loss' in r]
    assert [r['step'] for r in train] == [2]  # logged at the epoch's end
    assert train[0]['epoch'] == 1 and train[0]['iter'] == 2
    assert any('accuracy/top1' in r for r in records)  # it validated
    assert (work_dir / 'epoch_1.pth').exists()
