"""Packaging with extras (docs/install.md) and the stack check that runs
when a config is built (mmst/stack.py).

What runs against real environments: the check on this (full) venv for
every task, the mmcv bounds against the ones the installed libraries assert
on import, setup.py's metadata as setuptools reads it, the pinned
requirement files. What is pure version logic: the problems reported for
other environments (the light stack under a detection config, mmcv too new,
numpy 2 with mmpose), given as the real version strings such environments
report; the light venv itself is built and checked by tools/setup_env.sh
(docs/install.md has the measured commands), too slow for the suite.
"""

import re
from pathlib import Path

import pytest
from mmengine.config import Config
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from mmst import stack
from mmst.apis import prepare_config

REPO = Path(__file__).resolve().parents[2]

# what the light stack (requirements/cls.txt) reports; the full one has mmcv
LIGHT = {
    'mmengine': '0.10.7',
    'mmcv': None,
    'mmcv-lite': '2.1.0',
    'numpy': '2.4.6',
    'mmpretrain': '1.2.0',
    'mmdet': '3.3.0',
    'mmsegmentation': '1.2.2',
    'mmpose': '1.3.2',
}
FULL = dict(LIGHT, mmcv='2.1.0', numpy='1.26.4', **{'mmcv-lite': None})


def setup_metadata():
    from distutils.core import run_setup

    return run_setup(str(REPO / 'setup.py'), stop_after='init')


def requirements(lines):
    return {Requirement(r).name: Requirement(r) for r in lines}


def pins(path):
    out = {}
    for line in (REPO / 'requirements' / path).read_text().splitlines():
        m = re.match(r'^([A-Za-z0-9_.-]+)==(\S+)', line)
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def test_this_venv_runs_every_task():
    stack.check_stack(stack.TASKS)  # raises StackError otherwise
    assert stack.stack_report('det')[1] == []


def test_mmcv_bounds_are_the_ones_the_libraries_assert():
    import mmdet
    import mmpose
    import mmpretrain
    import mmseg

    def spec(lib, low, high, high_op='<'):
        return f'>={getattr(lib, low)},{high_op}{getattr(lib, high)}'

    low, high = 'mmcv_minimum_version', 'mmcv_maximum_version'
    declared = {
        'cls': spec(mmpretrain, low, high),
        'det': spec(mmdet, low, high),
        'seg': spec(mmseg, 'MMCV_MIN', 'MMCV_MAX'),
        # mmpose's assert includes its maximum
        'pose': spec(mmpose, low, high, '<='),
    }
    assert stack.MMCV_SPEC == declared


def test_setup_extras_carry_each_task_and_match_the_check():
    dist = setup_metadata()
    base = requirements(dist.install_requires)
    # `pip install -e .`: what `import mmst` needs (tqdm: the analysis
    # tools' progress), no mmcv, no numpy<2
    assert set(base) == {'torch', 'mmengine', 'numpy', 'tqdm'}
    assert base['mmengine'].specifier == SpecifierSet(stack.MMENGINE_SPEC)
    assert base['numpy'].specifier == SpecifierSet('')
    extras = {k: requirements(v) for k, v in dist.extras_require.items()}
    for task, lib in stack.TASK_LIBRARY.items():
        assert extras[task][lib].specifier == SpecifierSet(
            stack.LIBRARY_SPEC[task]
        )
        assert lib in extras['all']
    # mmcv with ops only for det / seg / pose, within every library's range
    for task in stack.NEEDS_OPS:
        assert 'mmcv-lite' not in extras[task]
        for v in ('2.0.0rc4', '2.1.0', '2.2.0', '1.7.2'):
            assert (v in extras[task]['mmcv'].specifier) == stack.version_in(
                v, stack.MMCV_SPEC['det']
            ), (task, v)
    assert 'mmcv' not in extras['cls']
    assert extras['cls']['mmcv-lite'].specifier == SpecifierSet(
        stack.MMCV_SPEC['cls']
    )
    # never both mmcv and mmcv-lite in one install
    assert 'mmcv-lite' not in extras['all'] and 'mmcv' in extras['all']
    # numpy<2 only where a dependency demands it (mmpose's xtcocotools)
    with_numpy = {k for k, v in extras.items() if 'numpy' in v}
    assert with_numpy == {'pose', 'all'}
    assert extras['pose']['numpy'].specifier == SpecifierSet(
        stack.NUMPY_SPEC['pose']
    )
    assert {'onnx', 'onnxruntime'} <= set(extras['deploy'])


def test_pinned_stacks_satisfy_the_check():
    # constraints.txt pins both mmcv builds; each stack installs one
    assert 'mmcv' not in pins('cls.txt') and 'mmcv-lite' in pins('cls.txt')
    light = {**pins('constraints.txt'), **pins('cls.txt'), 'mmcv': None}
    full = {**pins('constraints.txt'), **pins('stack.txt'), 'mmcv-lite': None}
    full.update(pins('openmmlab.txt'))
    assert light['numpy'].startswith('2.') and full['numpy'].startswith('1.')
    assert not stack.stack_problems('cls', light)
    assert not stack.stack_problems('cls', full)
    for task in stack.NEEDS_OPS:
        assert not stack.stack_problems(task, full), task


@pytest.mark.parametrize(
    'task, changes, expected',
    [
        # the light stack under a detection / segmentation / pose config
        ('det', {}, 'mmcv-lite 2.1.0 has no compiled ops (mmcv.ops)'),
        ('seg', {}, 'mmcv-lite 2.1.0 has no compiled ops (mmcv.ops)'),
        ('pose', {}, 'numpy 2.4.6 is installed; mmpose 1.3.2 needs numpy<2'),
        # mmcv too new for mmdet 3.3 / mmseg 1.2 (mmcv 2.2 is the release
        # that dropped torch < 2.0 support and mmdet 3.3 refuses)
        (
            'det',
            {'mmcv': '2.2.0', 'mmcv-lite': None, 'numpy': '1.26.4'},
            'mmcv 2.2.0 is installed; mmdet 3.3.0 needs mmcv>=2.0.0rc4,<2.2.0',
        ),
        (
            'seg',
            {'mmcv': '2.2.0', 'mmcv-lite': None},
            'mmcv 2.2.0 is installed; mmsegmentation 1.2.2 needs '
            'mmcv>=2.0.0rc4,<2.2.0',
        ),
        (
            'cls',
            {'mmcv': '1.7.2', 'mmcv-lite': None},
            'mmcv 1.7.2 is installed; mmpretrain 1.2.0 needs '
            'mmcv>=2.0.0,<2.4.0',
        ),
        ('det', {'mmdet': None}, 'mmdet is not installed'),
        ('cls', {'mmcv-lite': None}, 'mmcv is not installed'),
        ('cls', {'mmengine': '1.0.0'}, 'mmengine 1.0.0 is installed'),
        ('cls', {'mmcv': '2.1.0'}, 'both mmcv 2.1.0 and mmcv-lite 2.1.0'),
    ],
)
def test_problem_names_the_piece(task, changes, expected):
    problems = stack.stack_problems(task, dict(LIGHT, **changes))
    assert any(expected in p for p in problems), problems


def test_light_stack_runs_classification_only():
    assert stack.stack_problems('cls', LIGHT) == []
    for task in stack.NEEDS_OPS:
        assert stack.stack_problems(task, LIGHT)
        assert stack.stack_problems(task, FULL) == []


def test_ops_that_do_not_load_and_missing_pkg_resources():
    problems = stack.stack_problems(
        'det',
        FULL,
        ops_error='ImportError: libc10.so: undefined symbol',
        has_pkg_resources=False,
    )
    assert 'mmcv.ops does not load (ImportError: libc10.so' in problems[0]
    assert "pip install 'setuptools<81'" in problems[1]


def test_fix_command_names_the_stack():
    assert 'bash tools/setup_env.sh ' in stack.fix_command(['cls'])
    assert "'.[cls]'" in stack.fix_command(['cls'])
    for task in stack.NEEDS_OPS:
        fix = stack.fix_command([task])
        assert 'bash tools/setup_env.sh --full' in fix
        assert f"pip install -e '.[{task}]'" in fix
        assert 'mim install' in fix
    assert "'.[all]'" in stack.fix_command(['cls', 'det', 'pose'])


@pytest.mark.parametrize(
    'version, spec, ok',
    [
        ('2.0.0rc4', '>=2.0.0rc4,<2.2.0', True),
        ('2.0.0rc3', '>=2.0.0rc4,<2.2.0', False),
        ('2.1.0', '>=2.0.0rc4,<2.2.0', True),
        ('2.2.0', '>=2.0.0rc4,<2.2.0', False),
        ('3.0.0', '>=2.0.0rc4,<=3.0.0', True),
        ('1.26.4', '<2', True),
        ('2.0.0', '<2', False),
        ('2.4.6', '<2', False),
    ],
)
def test_version_in(version, spec, ok):
    assert stack.version_in(version, spec) is ok


def test_bad_spec_and_task():
    with pytest.raises(ValueError, match="clause '2.0' of '2.0'"):
        stack.version_in('2.1.0', '2.0')
    with pytest.raises(ValueError, match="task='cls2' is invalid"):
        stack.stack_problems('cls2', LIGHT)


def test_config_of_an_uninstalled_scope_fails_at_build():
    cfg = Config(dict(default_scope='mmnosuchlib', model=dict(type='X')))
    with pytest.raises(stack.StackError, match="no package 'mmnosuchlib'"):
        prepare_config(cfg)


def test_error_lists_every_problem_and_the_fix():
    problems = stack.stack_problems('pose', LIGHT)
    assert len(problems) == 2  # mmcv-lite has no ops; numpy 2
    message = str(stack.stack_error(['pose'], problems, 'cfg.py'))
    assert message.startswith('the installed packages cannot run cfg.py:')
    for p in problems:
        assert f'\n  - {p}\n' in message
    assert message.endswith(stack.fix_command(['pose']))


def test_command_line_without_tasks_checks_all(capsys):
    """``python -m mmst.stack`` as README and docs/install.md write it (no
    task): every task. Before, argparse refused its own default
    (``invalid choice: ['all']``); only the form with a task was tested."""
    assert stack.main([]) == 0
    out = capsys.readouterr().out
    assert all(f'  {task}: ok' in out for task in stack.TASKS), out
    with pytest.raises(SystemExit):
        stack.main(['bogus'])


def test_python_requires_matches_what_mmst_needs():
    """setup.py said ``>=3.8`` while mmst uses ``BaseException.add_note``
    (3.11) and the light stack pins numpy 2.4 (3.11)."""
    text = (Path(__file__).resolve().parents[2] / 'setup.py').read_text()
    assert "python_requires='>=3.11'" in text
    assert hasattr(BaseException, 'add_note')
