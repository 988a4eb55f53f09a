"""What ``import mmst`` costs on top of torch and MMEngine.

Each repeat runs two fresh interpreters, interleaved: one times
``import torch, mmengine``, the other ``import torch, mmengine`` and then
``import mmst``; both time the imports inside the interpreter
(``time.perf_counter``; interpreter start-up not included). Prints the
median and spread (min-max) of each, the median of mmst's own share and the
ratio of the medians, and which task-library modules ``import mmst``
imported (mmpretrain, mmdet, mmseg, mmpose, mmcv.ops: none is expected,
mmst registers lazily, see mmst/registry.py).

    python benchmarks/import_time.py [--repeats 5] [--repo PATH]

``--repo`` puts another checkout first on ``PYTHONPATH`` (e.g. an older
commit, to compare). docs/benchmarks.md "Import time" has the numbers.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
TASK_MODULES = ('mmpretrain', 'mmdet', 'mmseg', 'mmpose', 'mmcv.ops')

# argv[1]: '1' to import mmst after torch and mmengine. Prints JSON.
CHILD = """
import json, sys, time
t0 = time.perf_counter()
import torch, mmengine
t1 = time.perf_counter()
if sys.argv[1] == '1':
    import mmst
t2 = time.perf_counter()
print(json.dumps(dict(
    base=t1 - t0, mmst=t2 - t1, total=t2 - t0,
    mmst_file=getattr(sys.modules.get('mmst'), '__file__', None),
    task_modules=[m for m in {task} if m in sys.modules])))
""".replace('{task}', repr(TASK_MODULES))


def run_child(with_mmst: bool, repo: Path) -> Dict:
    """One fresh interpreter: its import times (seconds) and the task
    library modules it ended with."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(repo), env.get('PYTHONPATH')) if p
    )
    proc = subprocess.run(
        [sys.executable, '-c', CHILD, '1' if with_mmst else '0'],
        env=env,
        cwd=str(repo),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def spread(values: List[float]) -> str:
    return (
        f'median {statistics.median(values):.2f} s '
        f'(min {min(values):.2f}, max {max(values):.2f})'
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description='Time `import torch, mmengine` vs `import torch, '
        'mmengine, mmst` in fresh interpreters.'
    )
    parser.add_argument(
        '--repeats', type=int, default=5, help='pairs of runs (default: 5)'
    )
    parser.add_argument(
        '--repo',
        type=Path,
        default=REPO,
        help='checkout whose mmst is imported (default: this one)',
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f'--repeats must be >= 1, got {args.repeats}')
    repo = args.repo.resolve()
    base, with_mmst, own, task = [], [], [], set()
    for _ in range(args.repeats):
        base.append(run_child(False, repo)['total'])
        run = run_child(True, repo)
        with_mmst.append(run['total'])
        own.append(run['mmst'])
        task.update(run['task_modules'])
    print(f'mmst from {run["mmst_file"]}, {args.repeats} repeats')
    print(f'import torch, mmengine:       {spread(base)}')
    print(f'import torch, mmengine, mmst: {spread(with_mmst)}')
    print(f'  of which import mmst:       {spread(own)}')
    ratio = statistics.median(with_mmst) / statistics.median(base)
    print(f'ratio of the medians: {ratio:.2f}')
    print(
        'task-library modules imported by import mmst: '
        + (', '.join(sorted(task)) or 'none')
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
