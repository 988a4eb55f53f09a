"""docs/backbones.md: the coverage table is what the code gives now, and
every backbone it calls automatic runs as a sub-network (skipped blocks
not computed, output shapes and state-dict keys unchanged)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.test_subnet.test_discovery import record_computed

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / 'docs' / 'backbones.md'
TOOL = REPO / 'tools' / 'analysis_tools' / 'backbone_coverage.py'


def _table() -> str:
    """The generated table of docs/backbones.md (between its markers)."""
    text = PAGE.read_text()
    begin = '<!-- coverage table: generated, do not edit -->'
    end = '<!-- end of coverage table -->'
    assert begin in text and end in text
    return text.split(begin, 1)[1].split(end, 1)[0]


def _automatic() -> list:
    rows = re.findall(r'^\| (\w+) \| [^|]* \| automatic \|', _table(), re.M)
    return sorted(rows)


def test_table_is_current_and_lists_every_backbone():
    import mmpretrain.models.backbones as backbones

    proc = subprocess.run(
        [sys.executable, str(TOOL), '--check'],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = re.findall(r'^\| (\w+) \| ', _table(), re.M)[1:]  # no header
    assert sorted(listed) == sorted(backbones.__all__)
    assert len(_automatic()) >= 40


def _forward(net, channels):
    errors = []
    for size in (64, 224, 256):
        try:
            with torch.no_grad():
                return net(torch.randn(1, channels, size, size)), size
        except Exception as e:  # noqa: BLE001 (the next size)
            errors.append(e)
    raise AssertionError(errors)


def _flat(out) -> list:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return []


@pytest.mark.parametrize('name', _automatic())
def test_automatic_backbone_runs_as_a_subnet(name):
    import mmpretrain.models  # noqa: F401
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS

    from mmst.analysis.coverage import BUILD_ARGS
    from mmst.subnet import ElasticDepth, SubnetSpace
    from mmst.subnet.discovery import input_channels

    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        net = MODELS.build(dict(type=name, **BUILD_ARGS.get(name, {})))
    net.eval()
    keys = set(net.state_dict())
    elastic = ElasticDepth(net)
    smallest = SubnetSpace(elastic.stage_depths).smallest()
    channels = input_channels(net)
    full, size = _forward(net, channels)
    calls = record_computed(elastic)
    x = torch.randn(1, channels, size, size)
    with torch.no_grad(), elastic.activate(smallest):
        small = net(x)
    kept = {
        stage[k] for idx, stage in zip(smallest, elastic.stages) for k in idx
    }
    assert calls == kept
    assert [t.shape for t in _flat(small)] == [t.shape for t in _flat(full)]
    assert set(net.state_dict()) == keys
