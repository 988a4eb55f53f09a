"""docs/backbones.md: the coverage table is what the code gives now and
lists every registered backbone. Every backbone it calls automatic is
trained and evaluated as sub-networks in test_backbone_matrix.py."""

import re
import subprocess
import sys
from pathlib import Path

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
