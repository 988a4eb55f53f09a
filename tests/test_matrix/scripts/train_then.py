"""Run ``tools/train.py`` several times in the same torchrun processes:
the argument lists are separated by ``--then``; after each run every rank
prints ``run N done on rank R`` (:data:`RUN_DONE`) so that the caller
can split the output.

    python -m torch.distributed.run --nproc_per_node=2 train_then.py \
        CONFIG --launcher pytorch ... --then CONFIG --resume ...

One launch instead of one per run: the processes import torch and the
task libraries once (several seconds each on a 2-core machine).
The process group is initialised once, by the first run, and destroyed
after the last one (re-initialising it in the same processes races on
the rendezvous store); the ranks meet at a barrier between runs.
"""

import importlib.util
import os
import sys
from pathlib import Path

import torch.distributed as dist

TRAIN = Path(__file__).resolve().parents[3] / 'tools' / 'train.py'
RUN_DONE = '=== train_then.py: run {} done on rank {} ==='


def main() -> None:
    spec = importlib.util.spec_from_file_location('mmst_tools_train', TRAIN)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    runs, current = [], []
    for arg in sys.argv[1:]:
        if arg == '--then':
            runs.append(current)
            current = []
        else:
            current.append(arg)
    runs.append(current)
    rank = os.environ.get('RANK', '0')
    destroy = tool.maybe_destroy_process_group
    tool.maybe_destroy_process_group = lambda launcher: dist.barrier()
    for i, argv in enumerate(runs):
        sys.argv = [str(TRAIN), *argv]
        tool.main()
        print(RUN_DONE.format(i, rank), flush=True)
    destroy('pytorch')


if __name__ == '__main__':
    main()
