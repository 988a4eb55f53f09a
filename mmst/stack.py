"""Which installed pieces each task needs, checked when a config is built.

mmst installs in two stacks (``docs/install.md``): the light one for
classification (``mmcv-lite``, no compiler, numpy 2) and the full one
(``mmcv`` with its compiled ops, mmdet, mmseg, mmpose, numpy 1). A config of
a task whose pieces are missing or of the wrong version would otherwise fail
deep inside a library (``ModuleNotFoundError: mmcv._ext``, an ``assert`` on
mmcv's version, an ABI error of xtcocotools under numpy 2). :func:`check_stack`
turns that into one :class:`StackError` at config-build time
(:func:`mmst.apis.prepare_config`) listing every problem and the command that
fixes it.

Command line (what ``tools/setup_env.sh`` runs to verify a venv)::

    python -m mmst.stack [cls|det|seg|pose|all ...] [--run-ops]
"""

import argparse
import importlib
import importlib.metadata
import importlib.util
import re
import sys
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from mmengine.utils import digit_version

# config ``default_scope`` -> task; task -> distribution of its library
SCOPE_TO_TASK = {
    'mmpretrain': 'cls',
    'mmdet': 'det',
    'mmseg': 'seg',
    'mmpose': 'pose',
}
TASK_LIBRARY = {
    'cls': 'mmpretrain',
    'det': 'mmdet',
    'seg': 'mmsegmentation',
    'pose': 'mmpose',
}
TASK_MODULE = {task: scope for scope, task in SCOPE_TO_TASK.items()}
TASKS = tuple(TASK_LIBRARY)

# Version ranges, as ``'>=A,<B'`` (``<=`` allowed). The library ranges are
# the ones setup.py's extras declare; the mmcv ranges are the ones each
# library asserts when imported (``mmcv_minimum_version`` /
# ``mmcv_maximum_version`` in its ``__init__``; tests/test_packaging checks
# both against the installed packages).
MMENGINE_SPEC = '>=0.10.0,<1.0.0'
LIBRARY_SPEC = {
    'cls': '>=1.1.0,<1.3.0',
    'det': '>=3.1.0,<3.4.0',
    'seg': '>=1.1.0,<1.3.0',
    'pose': '>=1.2.0,<1.4.0',
}
MMCV_SPEC = {
    'cls': '>=2.0.0,<2.4.0',
    'det': '>=2.0.0rc4,<2.2.0',
    'seg': '>=2.0.0rc4,<2.2.0',
    'pose': '>=2.0.0rc4,<=3.0.0',
}
# tasks whose library imports mmcv.ops (compiled C++/CUDA extension mmcv._ext)
NEEDS_OPS = ('det', 'seg', 'pose')
# numpy upper bounds a task's dependencies demand: mmpose's xtcocotools 1.14
# (needed by mmpose.datasets / mmpose.evaluation) is built for numpy 1
NUMPY_SPEC = {'pose': '<2'}

LIGHT_FIX = (
    "bash tools/setup_env.sh   (this repository's venv, light stack), "
    "or: pip install -e '.[cls]'"
)
FULL_FIX = (
    "bash tools/setup_env.sh --full   (this repository's venv: mmcv 2.1.0 "
    'compiled with its CPU ops, mmdet, mmseg, mmpose), '
    "or with your own (CUDA) torch: mim install 'mmcv>=2.0.0rc4,<2.2.0' "
    "&& pip install -e '.[{task}]'"
)


class StackError(RuntimeError):
    """The installed packages cannot run a config's task; the message lists
    every problem and the command that fixes them."""


def version_in(version: str, spec: str) -> bool:
    """Whether ``version`` (e.g. ``'2.0.0rc4'``) satisfies ``spec``, a
    comma-separated list of ``>=``, ``>``, ``<=``, ``<``, ``==`` clauses
    compared with :func:`mmengine.utils.digit_version` (pre-releases sort
    before their release, as in OpenMMLab's own checks).

    Raises:
        ValueError: a clause without one of those operators.
    """
    v = digit_version(version)
    for clause in spec.split(','):
        clause = clause.strip()
        for op in ('>=', '<=', '==', '>', '<'):
            if clause.startswith(op):
                bound = digit_version(clause[len(op) :].strip())
                break
        else:
            raise ValueError(
                f'version spec clause {clause!r} of {spec!r} has none of the '
                'operators >=, <=, ==, >, <'
            )
        ok = {
            '>=': v >= bound,
            '<=': v <= bound,
            '==': v == bound,
            '>': v > bound,
            '<': v < bound,
        }[op]
        if not ok:
            return False
    return True


def fix_command(tasks: Sequence[str]) -> str:
    """The command that installs what ``tasks`` need."""
    heavy = [t for t in tasks if t in NEEDS_OPS]
    if not heavy:
        return LIGHT_FIX
    extra = heavy[0] if len(set(heavy)) == 1 and len(tasks) == 1 else 'all'
    return FULL_FIX.format(task=extra)


def stack_problems(
    task: str,
    dists: Mapping[str, Optional[str]],
    ops_error: Optional[str] = None,
    has_pkg_resources: bool = True,
) -> List[str]:
    """What is missing or of the wrong version for ``task``.

    Args:
        task (str): ``'cls' | 'det' | 'seg' | 'pose'``.
        dists (Mapping[str, str | None]): installed version of each
            distribution (``'mmengine'``, ``'mmcv'``, ``'mmcv-lite'``,
            ``'numpy'`` and the task's library), ``None`` or absent when not
            installed (:func:`installed_versions`).
        ops_error (str, optional): why ``import mmcv.ops`` failed, ``None``
            when it loaded or was not tried.
        has_pkg_resources (bool): whether ``pkg_resources`` (setuptools < 81)
            is importable; mmengine needs it to resolve ``mmpretrain::``-style
            base configs.

    Returns:
        list[str]: one line per problem; empty when the task can run.

    Raises:
        ValueError: an unknown ``task``.
    """
    if task not in TASK_LIBRARY:
        raise ValueError(
            f'task={task!r} is invalid; allowed: ' + ' | '.join(TASKS)
        )
    problems = []
    lib = TASK_LIBRARY[task]

    def check(dist: str, spec: str, why: str) -> None:
        version = dists.get(dist)
        if version is None:
            problems.append(f'{dist} is not installed ({why} needs {spec})')
        elif not version_in(version, spec):
            problems.append(
                f'{dist} {version} is installed; {why} needs {dist}{spec}'
            )

    check(lib, LIBRARY_SPEC[task], f'mmst ({task})')
    check('mmengine', MMENGINE_SPEC, 'mmst')
    mmcv, lite = dists.get('mmcv'), dists.get('mmcv-lite')
    lib_version = f'{lib} {dists.get(lib) or ""}'.strip()
    if mmcv is not None and lite is not None:
        problems.append(
            f'both mmcv {mmcv} and mmcv-lite {lite} are installed; they '
            'share the `mmcv` folder, so either may have overwritten the '
            'other: pip uninstall -y mmcv mmcv-lite, then install one'
        )
    elif mmcv is None and lite is None:
        what = 'mmcv with its compiled ops' if task in NEEDS_OPS else 'mmcv'
        problems.append(
            f'mmcv is not installed ({lib_version} needs {what}, '
            f'mmcv{MMCV_SPEC[task]})'
        )
    else:
        name, version = ('mmcv', mmcv) if mmcv else ('mmcv-lite', lite)
        if not version_in(version, MMCV_SPEC[task]):
            problems.append(
                f'{name} {version} is installed; {lib_version} needs '
                f'mmcv{MMCV_SPEC[task]}'
            )
        if task in NEEDS_OPS and mmcv is None:
            problems.append(
                f'mmcv-lite {lite} has no compiled ops (mmcv.ops), which '
                f'{lib_version} imports; it needs mmcv built with its ops'
            )
        elif task in NEEDS_OPS and ops_error is not None:
            problems.append(
                f'mmcv {mmcv} is installed but mmcv.ops does not load '
                f'({ops_error}); {lib_version} imports it: mmcv must be '
                'built with its ops for the installed torch'
            )
    if task in NUMPY_SPEC:
        numpy = dists.get('numpy')
        if numpy is not None and not version_in(numpy, NUMPY_SPEC[task]):
            problems.append(
                f'numpy {numpy} is installed; {lib_version} needs '
                f'numpy{NUMPY_SPEC[task]} (xtcocotools, which mmpose.datasets '
                'and mmpose.evaluation import, is built for numpy 1)'
            )
    if not has_pkg_resources:
        problems.append(
            'setuptools without pkg_resources (>= 81) is installed; '
            "mmengine needs pkg_resources for 'PKG::' base configs: "
            "pip install 'setuptools<81'"
        )
    return problems


def installed_versions(task: str) -> Dict[str, Optional[str]]:
    """The installed versions :func:`stack_problems` reads for ``task``,
    from the distributions' metadata (nothing is imported)."""
    out = {}
    for dist in ('mmengine', 'mmcv', 'mmcv-lite', 'numpy', TASK_LIBRARY[task]):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = None
    return out


def mmcv_ops_error() -> Optional[str]:
    """Import ``mmcv.ops`` and return why it failed (``None``: it loaded)."""
    try:
        importlib.import_module('mmcv.ops')
    except (ImportError, OSError) as e:
        return f'{type(e).__name__}: {e}'
    return None


def stack_report(task: str) -> Tuple[Dict[str, Optional[str]], List[str]]:
    """Installed versions and problems for ``task`` in this environment."""
    dists = installed_versions(task)
    ops_error = None
    if task in NEEDS_OPS and dists['mmcv'] is not None:
        ops_error = mmcv_ops_error()
    has_pkg_resources = importlib.util.find_spec('pkg_resources') is not None
    return dists, stack_problems(task, dists, ops_error, has_pkg_resources)


def check_stack(tasks: Sequence[str], what: str = '') -> None:
    """Raise :class:`StackError` when any of ``tasks`` cannot run here.

    Args:
        tasks (Sequence[str]): tasks out of ``'cls' 'det' 'seg' 'pose'``.
        what (str): what needs them, for the message (e.g. the config).

    Raises:
        StackError: every problem of every task and the fix command.
        ValueError: an unknown task.
    """
    lines = []
    for task in tasks:
        for p in stack_report(task)[1]:
            if p not in lines:
                lines.append(p)
    if lines:
        raise stack_error(tasks, lines, what)


def stack_error(
    tasks: Sequence[str], problems: Sequence[str], what: str = ''
) -> StackError:
    """The :class:`StackError` for ``problems`` of ``tasks``: one line per
    problem, then the fix command."""
    return StackError(
        f'the installed packages cannot run {what or "/".join(tasks)}:\n'
        + ''.join(f'  - {line}\n' for line in problems)
        + f'Fix: {fix_command(tasks)}'
    )


def check_config_stack(cfg) -> None:
    """Check the stack for a config's task, named by its ``default_scope``
    (``mmpretrain`` / ``mmdet`` / ``mmseg`` / ``mmpose``); a scope of
    another library must at least be installed.

    Raises:
        StackError: as :func:`check_stack`, or an uninstalled scope library.
    """
    scope = cfg.get('default_scope')
    name = getattr(cfg, 'filename', None) or 'this config'
    what = f'{name} (default_scope={scope!r})'
    if scope in SCOPE_TO_TASK:
        check_stack([SCOPE_TO_TASK[scope]], what)
    elif scope and scope != 'mmst' and importlib.util.find_spec(scope) is None:
        raise StackError(
            f'{what}: no package {scope!r} is installed; install the '
            'OpenMMLab library of that scope (mmst supports mmpretrain, '
            f'mmdet, mmseg, mmpose: {fix_command(["det"])})'
        )


def load_config(filename: str, **kwargs):
    """``mmengine.config.Config.fromfile`` that turns a missing piece into a
    :class:`StackError` naming the fix: a task library that a
    ``_base_ = ['mmdet::...']``-style base config needs, or the
    ``pkg_resources`` (setuptools < 81) with which mmengine finds it.

    Args:
        filename (str): The config file.
        **kwargs: passed to ``Config.fromfile``.

    Returns:
        mmengine.config.Config: The config.

    Raises:
        StackError: a missing task library or pkg_resources.
    """
    from mmengine.config import Config

    try:
        return Config.fromfile(filename, **kwargs)
    except ModuleNotFoundError as e:
        library_task = {lib: task for task, lib in TASK_LIBRARY.items()}
        m = re.match(r'(\S+) is not installed, please install', str(e))
        if m and m.group(1) in library_task:
            task = library_task[m.group(1)]
            problem = (
                f'{m.group(1)} is not installed (its configs are base '
                f'configs of {filename})'
            )
        elif e.name == 'pkg_resources':
            task, problem = 'cls', stack_problems('cls', {}, None, False)[-1]
        else:
            raise
        others = [p for p in stack_report(task)[1] if 'not installed' not in p]
        raise stack_error([task], [problem, *others], filename) from e


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog='python -m mmst.stack',
        description='Check that the installed packages can run these tasks.',
    )
    # default 'all' as a string: argparse checks a list default of
    # nargs='*' against `choices` as one value and refuses it
    p.add_argument('tasks', nargs='*', default='all', choices=[*TASKS, 'all'])
    p.add_argument(
        '--run-ops',
        action='store_true',
        help='also run mmcv.ops.nms on the CPU (a compiled op, end to end)',
    )
    args = p.parse_args(argv)
    given = [args.tasks] if isinstance(args.tasks, str) else args.tasks
    tasks = list(TASKS) if 'all' in given else given
    failed = False
    for task in tasks:
        dists, problems = stack_report(task)
        shown = ' | '.join(f'{k} {v}' for k, v in dists.items() if v)
        print(f'  {task}: {"ok" if not problems else "NOT READY"} ({shown})')
        for line in problems:
            print(f'    - {line}')
        failed |= bool(problems)
    if failed:
        print(f'Fix: {fix_command(tasks)}', file=sys.stderr)
        return 1
    for task in tasks:  # the libraries import (what a config build does)
        importlib.import_module(TASK_MODULE[task])
    print('  imported ' + ', '.join(TASK_MODULE[t] for t in tasks))
    if args.run_ops:
        import torch
        from mmcv.ops import nms

        boxes = torch.rand(50, 4)
        boxes[:, 2:] += boxes[:, :2]
        nms(boxes, torch.rand(50), 0.5)
        print('  mmcv.ops.nms ran on the CPU')
    import mmst
    from mmst.utils import register_all_modules

    register_all_modules(init_default_scope=False)  # lazy otherwise
    print(f'  mmst {mmst.__version__} imports and registers its modules')
    return 0


if __name__ == '__main__':
    sys.exit(main())
