"""model-index.yml and the per-library metafiles: they parse (as YAML and
with the `modelindex` package that mim uses), list every config under
configs/ exactly once and nothing else, and say where each number comes
from; the numbers agree with the docs they were taken from."""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
METAFILES = [
    'configs/mmpretrain/metafile.yml',
    'configs/mmdet/metafile.yml',
    'configs/mmseg/metafile.yml',
    'configs/mmpose/metafile.yml',
]


def load(path: str) -> dict:
    with open(REPO / path) as f:
        return yaml.safe_load(f)


def all_models() -> list:
    return [m for path in METAFILES for m in load(path)['Models']]


def test_index_imports_the_metafiles():
    assert load('model-index.yml') == {'Import': METAFILES}


def test_modelindex_reads_and_checks_it(capsys):
    from modelindex.load_model_index import load as mi_load

    index = mi_load(str(REPO / 'model-index.yml'))
    assert len(index.models) == len(all_models())
    index.check(silent=False)
    assert capsys.readouterr().out.strip() == 'All good!'


def test_every_config_listed_once_and_every_listed_config_exists():
    configs = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / 'configs').rglob('*.py')
        if '_base_' not in p.relative_to(REPO).parts
    }
    listed = [m['Config'] for m in all_models()]
    assert len(listed) == len(set(listed)), 'a config is listed twice'
    assert sorted(configs - set(listed)) == [], 'configs missing'
    assert sorted(set(listed) - configs) == [], 'listed but not found'


def test_names_collections_and_sources():
    models = all_models()
    for path in METAFILES:
        collections = {c['Name'] for c in load(path)['Collections']}
        for m in load(path)['Models']:
            assert m['In Collection'] in collections, m['Name']
    for m in models:
        assert m['Name'] == Path(m['Config']).stem
        assert m.get('Results') or m.get('Comment'), m['Name']
        for r in m.get('Results', []):
            assert set(r) >= {'Task', 'Dataset', 'Metrics', 'Source'}
            if r['Source'].startswith('measured by mmst'):
                assert r['Command'].startswith('python '), m['Name']
            else:
                assert r['Source'].startswith('paper: '), m['Name']
                assert r['Source'].endswith('not reproduced by mmst')


def table_rows(path: str, first_cell: str) -> dict:
    """Rows of a markdown table (by first cell) after the first line of
    ``path`` that starts with ``| first_cell |``."""
    lines = (REPO / path).read_text().splitlines()
    start = next(i for i, s in enumerate(lines) if s.startswith(first_cell))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith('|'):
            break
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        rows[cells[0]] = cells
    return rows


def test_measured_fashion_mnist_numbers_are_the_benchmarks():
    rows = table_rows('docs/benchmarks.md', '| method | main top-1 |')
    by_name = {m['Name']: m for m in all_models()}
    for method, cfg in (('CT', 'ct'), ('ST', 'st'), ('ST++', 'stpp')):
        (result,) = by_name[f'resnet20_{cfg}_fmnist']['Results']
        metrics = result['Metrics']
        cells = rows[method]
        for cell, key in zip(
            cells[1:4],
            ('', 'subnet[1,1,1] ', 'subnet[2,2,2] '),
        ):
            mean, std = (float(x) for x in cell.split('+-'))
            assert metrics[f'{key}Top 1 Accuracy'] == mean, (method, key)
            assert metrics[f'{key}Top 1 Accuracy std'] == std, (method, key)
        assert result['Command'] in (REPO / 'docs/benchmarks.md').read_text()


@pytest.mark.parametrize('kind', ['R50-ST', 'R50-ST*'])
def test_downstream_paper_numbers_are_the_docs_table(kind):
    lines = (REPO / 'docs/downstream.md').read_text().splitlines()
    by_config = {m['Config']: m for m in all_models()}
    checked = 0
    for line in lines:
        if not (line.startswith('| ') and '`configs/' in line):
            continue
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        config = cells[3 if kind == 'R50-ST' else 4].strip('`*')
        value = cells[7 if kind == 'R50-ST' else 8]
        model = by_config[config]
        if value == '-':
            assert 'Results' not in model, config
            continue
        (result,) = model['Results']
        got = list(result['Metrics'].values())
        want = [float(v) for v in value.split('/')]
        if cells[5] == 'AP':  # mmpose's COCO AP is in 0..1
            want = [v / 100 for v in want]
        assert got == pytest.approx(want, abs=1e-9), config
        checked += 1
    assert checked >= 12


def test_paper_imagenet_numbers():
    by_name = {m['Name']: m for m in all_models()}
    top1 = {
        name: by_name[name]['Results'][0]['Metrics']['Top 1 Accuracy']
        for name in (
            'resnet50_ct_in1k',
            'resnet50_st_in1k',
            'resnet50_stpp-a1_in1k',
            'resnet50_stpp-a2_in1k',
            'resnet50_stpp_eval_in1k',
        )
    }
    assert top1 == {
        'resnet50_ct_in1k': 76.70,
        'resnet50_st_in1k': 77.56,
        'resnet50_stpp-a1_in1k': 80.50,
        'resnet50_stpp-a2_in1k': 80.97,
        'resnet50_stpp_eval_in1k': 80.50,
    }
    # the same numbers as docs/method.md's recipe table, quoted in the configs
    for name in ('resnet50_st_in1k', 'resnet50_stpp-a1_in1k'):
        text = (REPO / by_name[name]['Config']).read_text()
        assert re.search(rf'\b{top1[name]:.2f}%\)', text), name
