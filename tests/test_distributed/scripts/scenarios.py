"""Several multi-process scenarios in ONE torchrun launch.

    python -m torch.distributed.run --nproc_per_node=2 scenarios.py \
        SCRIPT ARGS... --then SCRIPT ARGS... [--then ...]

Each SCRIPT (a file of the repository with a ``main()`` that reads
``sys.argv``, e.g. tools/train.py or a test script, imported by its module
name: ``tools.train``) runs in turn in the same processes, so
that they import torch and the four task libraries once instead of once
per launch (several seconds of CPU per process on a 2-core machine).
After each run every rank prints :data:`RUN_DONE` with the run's index
and its rank, so that the caller can split the output.

The process group is initialised once, by the first run that asks, and
destroyed after the last one: re-initialising it in the same processes
races on the rendezvous store, so later ``init_process_group`` calls are
skipped and ``destroy_process_group`` is a barrier until the end.
MMEngine's global instances a run created (default scopes, message hubs,
visualizers) are removed after it, as a fresh launch would start.
"""

import importlib
import os
import sys

import torch.distributed as dist

from tests.test_distributed.common import (
    RUN_DONE,
    mmengine_instances,
    remove_new_instances,
    repo_module,
)


def split_runs(argv):
    """``SCRIPT ARGS --then SCRIPT ARGS ...`` -> one list per run."""
    runs, current = [], []
    for arg in argv:
        if arg == '--then':
            runs.append(current)
            current = []
        else:
            current.append(arg)
    runs.append(current)
    return runs


def main() -> None:
    init, destroy = dist.init_process_group, dist.destroy_process_group

    def init_once(*args, **kwargs):
        if not dist.is_initialized():
            init(*args, **kwargs)

    dist.init_process_group = init_once
    dist.destroy_process_group = lambda *a, **k: dist.barrier()
    rank = os.environ.get('RANK', '0')
    for i, (script, *args) in enumerate(split_runs(sys.argv[1:])):
        module = importlib.import_module(repo_module(script))
        sys.argv = [script, *args]
        before = mmengine_instances()
        module.main()
        remove_new_instances(before)
        print(RUN_DONE.format(i, rank), flush=True)
    if dist.is_initialized():
        destroy()


if __name__ == '__main__':
    main()
