"""mmst plugs into each task library through ``custom_imports``, and
``import mmst`` works without the optional task libraries.

Every check runs in a fresh interpreter, so mmst is imported by the config
(not by the test process) and hidden libraries really are absent.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TASK_LIBRARIES = ('mmdet', 'mmseg', 'mmpretrain', 'mmpose')

# Runs in a subprocess: argv = [library, config path, library, path, ...];
# the first config's custom_imports imports mmst.
BUILD_FROM_CONFIG = textwrap.dedent("""
    import importlib
    import sys

    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    args = sys.argv[1:]
    assert 'mmst' not in sys.modules, 'mmst imported too early'
    for library, cfg_path in zip(args[::2], args[1::2]):
        cfg = Config.fromfile(cfg_path)
        assert 'mmst' in sys.modules, 'custom_imports did not import mmst'
        assert cfg.default_scope == library, cfg.default_scope

        init_default_scope(cfg.default_scope)  # as MMEngine's Runner does
        registry = importlib.import_module(library + '.registry')
        loss = registry.MODELS.build(cfg.model)

        from mmst.models.losses import KLDivergenceLoss
        assert type(loss) is KLDivergenceLoss, (library, type(loss))
        assert loss.temperature == 2.0 and loss.loss_weight == 0.5
        assert loss.normalize == 'layernorm'

        gen = torch.Generator().manual_seed(0)
        student = torch.randn(4, 10, generator=gen)
        teacher = torch.randn(4, 10, generator=gen)
        value = loss(student, teacher)
        assert value.ndim == 0 and torch.isfinite(value) and value > 0, value
        print(library, 'built', type(loss).__module__, type(loss).__name__)
""")

# Runs in a subprocess: argv = hidden library names.
IMPORT_WITHOUT = textwrap.dedent("""
    import sys

    hidden = sys.argv[1:]
    for name in hidden:
        # what an uninstalled package looks like: `import name` raises
        # ModuleNotFoundError and importlib.util.find_spec(name) is None
        sys.modules[name] = None

    import mmst
    from mmst.registry import MODELS

    assert MODELS.get('KLDivergenceLoss') is not None
    leaked = sorted(
        m for m, mod in sys.modules.items()
        if mod is not None and m.split('.')[0] in hidden)
    assert not leaked, leaked
    print('imported mmst', mmst.__version__, 'without', hidden)
""")


def _run_python(
    code: str, *args: str, cwd: Path
) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(REPO), env.get('PYTHONPATH')) if p
    )
    env.setdefault('OMP_NUM_THREADS', '1')
    return subprocess.run(
        [sys.executable, '-c', code, *args],
        cwd=str(cwd),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_build_mmst_component_from_library_config(tmp_path):
    """An mmst component in a config of each task library (its default
    scope), mmst imported by the config's ``custom_imports``; one fresh
    interpreter builds all four in turn."""
    args = []
    for library in TASK_LIBRARIES:
        cfg_path = tmp_path / f'kl_loss_{library}.py'
        cfg_path.write_text(
            textwrap.dedent(f"""
            _base_ = ['{library}::_base_/default_runtime.py']
            default_scope = '{library}'
            custom_imports = dict(imports=['mmst'], allow_failed_imports=False)
            model = dict(
                type='mmst.KLDivergenceLoss',
                temperature=2.0,
                loss_weight=0.5,
                normalize='layernorm',
                amplitude=1.0)
            """)
        )
        args += [library, str(cfg_path)]

    proc = _run_python(BUILD_FROM_CONFIG, *args, cwd=tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    for library in TASK_LIBRARIES:
        assert f'{library} built mmst.models.losses' in proc.stdout


def test_custom_import_failure_is_reported(tmp_path):
    """The subprocess check can fail: a missing plugin module is an error."""
    cfg_path = tmp_path / 'missing.py'
    cfg_path.write_text(
        textwrap.dedent("""
        default_scope = 'mmdet'
        custom_imports = dict(
            imports=['mmst_does_not_exist'], allow_failed_imports=False)
        model = dict(type='mmst.KLDivergenceLoss')
        """)
    )

    proc = _run_python(BUILD_FROM_CONFIG, 'mmdet', str(cfg_path), cwd=tmp_path)

    assert proc.returncode != 0
    assert 'mmst_does_not_exist' in proc.stderr


@pytest.mark.parametrize(
    'hidden',
    [('mmseg', 'mmpose', 'mmpretrain'), TASK_LIBRARIES],
    ids=['without-mmseg-mmpose-mmpretrain', 'without-all-task-libraries'],
)
def test_import_mmst_without_task_libraries(hidden, tmp_path):
    proc = _run_python(IMPORT_WITHOUT, *hidden, cwd=tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'imported mmst' in proc.stdout


# Runs in a subprocess: what ``import mmst`` imports, then a lookup by type
# string through MMEngine's root registry, as another library's config does.
IMPORT_LIGHT = textwrap.dedent("""
    import sys

    import mmst

    heavy = ('mmpretrain', 'mmdet', 'mmseg', 'mmpose', 'mmcv.ops')
    loaded = [m for m in heavy if m in sys.modules]
    assert not loaded, f'import mmst imported {loaded}'
    assert 'mmst.engine.checkpoint_hook' not in sys.modules

    from mmengine.registry import HOOKS

    hook = HOOKS.get('mmst.SafeCheckpointHook')
    assert hook is mmst.engine.SafeCheckpointHook, hook
    print('found', hook.__module__, hook.__name__)
""")


def test_import_mmst_is_light(tmp_path):
    """``import mmst`` imports no task library (mmst's registries fill on
    their first lookup: :mod:`mmst.registry`), and a component is still
    found by its type string afterwards."""
    proc = _run_python(IMPORT_LIGHT, cwd=tmp_path)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'found mmst.engine.checkpoint_hook SafeCheckpointHook' in (
        proc.stdout
    )


def _registrations() -> list:
    """(module, registry name) of every ``REGISTRY.register_module`` in
    mmst's sources, REGISTRY imported from ``mmst.registry``."""
    import ast

    found = []
    for path in sorted((REPO / 'mmst').rglob('*.py')):
        tree = ast.parse(path.read_text())
        names = {
            alias.asname or alias.name: alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and node.module == 'mmst.registry'
            for alias in node.names
        }
        module = '.'.join(path.relative_to(REPO).with_suffix('').parts)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == 'register_module'
                and isinstance(node.value, ast.Name)
                and node.value.id in names
            ):
                found.append((module, names[node.value.id]))
    return found


def test_registering_modules_are_in_registry_locations():
    """Registration is lazy: a module that registers into an mmst registry
    is imported only through that registry's ``locations`` (itself or a
    package above it), else its type strings would not be found."""
    import mmst.registry

    found = _registrations()
    assert {name for _, name in found} >= {'MODELS', 'HOOKS', 'LOOPS'}
    missing = []
    for module, name in found:
        locations = getattr(mmst.registry, name)._locations
        if not any(
            module == loc or module.startswith(loc + '.') for loc in locations
        ):
            missing.append(f'{module} registers into {name}, {locations=}')
    assert not missing, missing


def test_no_code_is_loaded_by_file_path():
    """Every module is imported by name (``import mmst`` is light enough
    for every tool): nothing in the repository builds a module from a file
    path."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    needle = 'spec_from_' + 'file_location'  # not a hit in this file
    hits = [
        str(path.relative_to(repo))
        for folder in ('mmst', 'tools', 'tests', 'benchmarks')
        for path in (repo / folder).rglob('*.py')
        if needle in path.read_text()
    ]
    assert not hits, hits
