"""The documentation builds with Sphinx and MyST without a warning (the
build ReadTheDocs runs, .readthedocs.yaml), and every page is in it."""

import re
import subprocess
import sys

import yaml

from .doc_text import REPO


def test_sphinx_build_without_warnings(tmp_path):
    import importlib.util

    for name in ('sphinx', 'myst_parser'):
        assert importlib.util.find_spec(name), (
            f'{name} is not installed (requirements/dev.txt): run '
            'bash tools/setup_env.sh --full'
        )
    out = tmp_path / 'html'
    result = subprocess.run(
        [
            sys.executable,
            '-m',
            'sphinx',
            '-W',
            '--keep-going',
            '-q',
            '-b',
            'html',
            str(REPO / 'docs'),
            str(out),
            '-d',
            str(tmp_path / 'doctrees'),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # every Markdown page became an HTML page; README is the index page
    for page in (REPO / 'docs').glob('*.md'):
        assert (out / (page.stem + '.html')).is_file(), page.name
    index = (out / 'index.html').read_text()
    assert 'Stimulative Training for OpenMMLab' in index


def test_readthedocs_config():
    cfg = yaml.safe_load((REPO / '.readthedocs.yaml').read_text())
    assert cfg['version'] == 2
    assert cfg['sphinx']['configuration'] == 'docs/conf.py'
    assert cfg['sphinx']['fail_on_warning'] is True
    (install,) = cfg['python']['install']
    reqs = REPO / install['requirements']
    lines = [
        ln.strip()
        for ln in reqs.read_text().splitlines()
        if ln.strip() and not ln.startswith('#')
    ]
    # the pins of the development environment apply to ReadTheDocs too
    constraint = [ln for ln in lines if ln.startswith('-c ')]
    assert len(constraint) == 1
    pins = (reqs.parent / constraint[0][3:]).resolve().read_text()
    for name in ('sphinx', 'myst-parser'):
        assert name in lines
        assert re.search(rf'^{name}==\S+$', pins, re.M), name
    # the Python the pins were made on (docs/install.md; Sphinx 9.0 is
    # the last Sphinx for 3.11)
    assert cfg['build']['tools']['python'] == '3.11'


def test_readme_badges_only_for_what_exists():
    """A badge claims a service or a file; claim only what exists."""
    readme = (REPO / 'README.md').read_text()
    badges = re.findall(r'!\[[^\]]*\]\(([^)]+)\)', readme)
    for url in badges:
        if 'license' in url.lower():
            assert (REPO / 'LICENSE').exists(), url
        if re.search(r'github\.com/.*/actions|workflow', url):
            assert (REPO / '.github' / 'workflows').is_dir(), url
        if 'readthedocs' in url:
            assert (REPO / '.readthedocs.yaml').exists(), url
        assert not re.search(r'travis|circleci|codecov|coveralls', url), url
