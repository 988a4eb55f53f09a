"""Running the tools from the tests: multi-process CPU jobs (torchrun,
free ports, the environment), subprocesses, and tools/*.py in-process
where a subprocess proves nothing (the libraries are imported already;
a subprocess costs seconds of imports)."""

import importlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional
from unittest import mock

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).parent / 'scripts'
FMNIST_ROOT = REPO / 'data' / 'fashion_mnist'
#: The training modes scripts/st_parity.py runs (test_st_parity.py).
PARITY_MODES = ('mmst', 'mmst_accum2', 'nosync', 'torchddp', 'torchddp_main')
FMNIST_FILES = (
    'train-images-idx3-ubyte',
    'train-labels-idx1-ubyte',
    't10k-images-idx3-ubyte',
    't10k-labels-idx1-ubyte',
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def cpu_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """The environment of a CPU multi-process job: one thread per process,
    gloo over loopback, the repository importable, the caller's python."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS='1',
        GLOO_SOCKET_IFNAME=env.get('GLOO_SOCKET_IFNAME', 'lo'),
        PYTHON=sys.executable,
        PYTHONPATH=os.pathsep.join(
            p for p in (str(REPO), env.get('PYTHONPATH')) if p
        ),
    )
    env.update(extra or {})
    return env


def run(
    cmd: List[str],
    cwd,
    timeout: float = 300,
    env: Optional[Dict[str, str]] = None,
) -> subprocess.CompletedProcess:
    """Run ``cmd``; fail with its output's tail when it fails."""
    proc = subprocess.run(
        cmd,
        env=env or cpu_env(),
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, (
        f'{" ".join(map(str, cmd))} failed ({proc.returncode}):\n'
        f'{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}'
    )
    return proc


def torchrun(script: Path, args: List[str], nproc: int = 2) -> List[str]:
    """A ``python -m torch.distributed.run`` command on a free port."""
    return [
        sys.executable,
        '-m',
        'torch.distributed.run',
        '--nnodes=1',
        f'--nproc_per_node={nproc}',
        '--master_addr=127.0.0.1',
        f'--master_port={free_port()}',
        str(script),
        *args,
    ]


def require_fashion_mnist() -> Path:
    """The prepared Fashion-MNIST folder; fails (does not skip) when it is
    missing, since CI prepares it."""
    missing = [f for f in FMNIST_FILES if not (FMNIST_ROOT / f).is_file()]
    assert not missing, (
        f'Fashion-MNIST is not prepared in {FMNIST_ROOT} (missing '
        f'{", ".join(missing)}); run `bash tools/setup_env.sh --data`'
    )
    return FMNIST_ROOT


def dist_train_fmnist(
    config: Path, work_dir: Path, cwd, *options: str
) -> subprocess.CompletedProcess:
    """``tools/dist_train.sh CONFIG 2`` on CPU (gloo, a free port): one
    epoch of 2 iterations on 64 Fashion-MNIST images (2 ranks x 16), a log
    line per iteration; ``options`` are more ``--cfg-options``."""
    root = require_fashion_mnist()
    return run(
        [
            'bash',
            str(REPO / 'tools' / 'dist_train.sh'),
            str(config),
            '2',
            '--work-dir',
            str(work_dir),
            '--cfg-options',
            'train_cfg.max_epochs=1',
            'train_dataloader.dataset.indices=64',
            'train_dataloader.batch_size=16',
            'default_hooks.logger.interval=1',
            f'train_dataloader.dataset.data_root={root}',
            f'val_dataloader.dataset.data_root={root}',
            *options,
        ],
        cwd=cwd,
        env=cpu_env(dict(PORT=str(free_port()))),
    )


def repo_module(path) -> str:
    """The module name of a Python file of the repository
    (``REPO/tools/misc/make_tiny_coco.py`` -> ``tools.misc.make_tiny_coco``),
    importable with the repository root on ``sys.path``."""
    relative = Path(path).resolve().relative_to(REPO)
    if relative.suffix != '.py':
        raise ValueError(f'path={str(path)!r}: not a .py file of {REPO}')
    return '.'.join(relative.with_suffix('').parts)


def load_tool(tool: str):
    """``tools/<tool>.py`` imported as module ``tools.<tool>`` (``tool``
    may hold a folder, e.g. ``analysis_tools/backbone_coverage``)."""
    return importlib.import_module(repo_module(REPO / 'tools' / f'{tool}.py'))


def run_tool(tool: str, *args: str) -> None:
    """``python tools/<tool>.py ARGS`` as ``main()`` in this process,
    with ``sys.argv`` and the environment restored afterwards (the tools
    set ``LOCAL_RANK`` when it is unset)."""
    module = load_tool(tool)
    argv = [module.__file__, *map(str, args)]
    with mock.patch.object(sys, 'argv', argv), mock.patch.dict(os.environ):
        module.main()


def mmengine_instances() -> dict:
    """MMEngine's global instances that code outside a Runner reads: the
    default scopes, message hubs (an ST model's ``train_step`` outside a
    runner takes the iteration of the latest one) and visualizers (reused
    by name). Class -> instance names; every ManagerMixin class keeps its
    own, so each Visualizer subclass is listed."""
    from mmengine.logging import MessageHub
    from mmengine.registry import DefaultScope
    from mmengine.visualization import Visualizer

    classes, todo = [DefaultScope, MessageHub], [Visualizer]
    while todo:
        cls = todo.pop()
        classes.append(cls)
        todo.extend(cls.__subclasses__())
    return {cls: set(cls._instance_dict) for cls in classes}


def remove_new_instances(before: dict) -> None:
    """Remove the instances created since ``before``
    (:func:`mmengine_instances`), as a fresh process would start."""
    for cls, names in mmengine_instances().items():
        for name in names - before.get(cls, set()):
            del cls._instance_dict[name]


def tool_metrics(work_dir: Path) -> dict:
    """The metrics tools/test.py wrote (``<timestamp>/<timestamp>.json``)."""
    files = [
        f
        for f in Path(work_dir).glob('*/*.json')
        if f.stem == f.parent.name and f.stem[:8].isdigit()
    ]
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def tools_test(config, checkpoint, work_dir, *args: str) -> dict:
    """``python tools/test.py CONFIG CHECKPOINT --work-dir WORK_DIR ARGS``
    in this process (:func:`run_tool`, under an experiment name of its
    own: MMEngine reuses the logger of an earlier run of the same name);
    the metrics it recorded."""
    work_dir = Path(work_dir)
    name = f'{work_dir.parent.name}_{work_dir.name}'
    run_tool(
        'test',
        config,
        checkpoint,
        '--work-dir',
        work_dir,
        *args,
        '--cfg-options',
        f'experiment_name={name}',
    )
    return tool_metrics(work_dir)


SCENARIOS = SCRIPTS / 'scenarios.py'
#: What scripts/scenarios.py prints after each run, on each rank.
RUN_DONE = '=== scenarios.py: run {} done on rank {} ==='


def run_scenarios(runs: List[List[str]], cwd, timeout: float = 600):
    """Several scripts (``[script, *args]`` each, run as ``main()``) in
    ONE 2-process torchrun launch (``scripts/scenarios.py``); the launch's
    output and rank 0's output of each run (rank 0 logs in order: split
    at its own end-of-run markers)."""
    args = []
    for script, *rest in runs:
        args += (['--then'] if args else []) + [str(script), *map(str, rest)]
    proc = run(torchrun(SCENARIOS, args), cwd=cwd, timeout=timeout)
    log = proc.stdout + proc.stderr
    for i in range(len(runs)):
        for rank in range(2):
            assert RUN_DONE.format(i, rank) in log, log[-3000:]
    ends = [proc.stdout.index(RUN_DONE.format(i, 0)) for i in range(len(runs))]
    starts = [0, *ends[:-1]]
    return proc, [proc.stdout[a:b] for a, b in zip(starts, ends)]
