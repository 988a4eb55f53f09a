"""docs/backbones.md: the coverage table is what the code gives now and
lists every registered backbone. Every backbone it calls automatic is
trained and evaluated as sub-networks in test_backbone_matrix.py."""

import re
from pathlib import Path

import pytest

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


def _page_rows() -> dict:
    """Backbone -> its row (line) in the page's table."""
    rows = {}
    for line in _table().splitlines():
        cells = [c.strip() for c in line.strip('|').split('|')]
        if line.startswith('| ') and cells[0] not in ('backbone', '---'):
            rows[cells[0]] = line
    return rows


def _registered() -> list:
    import mmpretrain.models.backbones as backbones

    return sorted(backbones.__all__)


@pytest.mark.parametrize('name', _registered())
def test_table_row_is_current(name):
    """The page's row of each backbone is what the code gives now (one
    test per backbone, so that the two workers share the builds)."""
    from mmst.testing.coverage import coverage_table, markdown

    row = coverage_table([name])[0]
    assert _page_rows().get(name) == markdown([row]).splitlines()[-1], (
        f'{PAGE}: the row of {name} is stale; regenerate the table: '
        f'python {TOOL.relative_to(REPO)}'
    )


def test_table_lists_every_backbone_with_its_counts():
    rows = _page_rows()
    assert sorted(rows) == _registered()
    assert len(_automatic()) >= 40
    statuses = [line.split('|')[3].strip() for line in rows.values()]
    from mmst.testing.coverage import (
        AUTOMATIC,
        DECLARATION,
        NOT_APPLICABLE,
    )

    summary = (
        f'{len(rows)} backbones: {statuses.count(AUTOMATIC)} automatic, '
        f'{statuses.count(DECLARATION)} with a declaration, '
        f'{statuses.count(NOT_APPLICABLE)} not applicable.'
    )
    assert summary in _table(), summary


def test_tool_writes_and_checks_the_page(tmp_path, capsys):
    """The tool rewrites the table between the markers and ``--check``
    tells a current page (exit 0) from a stale one (exit 1)."""
    from tests.test_distributed.common import load_tool

    tool = load_tool('analysis_tools/backbone_coverage')
    page = tmp_path / 'backbones.md'
    page.write_text(PAGE.read_text())
    names = ['MobileNetV3', 'ResNet']
    args = ['--out', str(page), '--backbones', *names]
    assert tool.main(args) == 0
    text = page.read_text()
    assert text.split(tool.BEGIN)[0] == PAGE.read_text().split(tool.BEGIN)[0]
    rows = _page_rows()
    for name in names:
        assert rows[name] in text
    assert '2 backbones:' in text
    assert tool.main([*args, '--check']) == 0
    page.write_text(text.replace(rows['ResNet'], rows['ResNet'] + ' x'))
    assert tool.main([*args, '--check']) == 1
    assert 'the coverage table is stale' in capsys.readouterr().err
