"""Faults of one rank under torchrun (2 CPU ranks), for
tests/test_distributed/test_rank_faults.py:

    python -m torch.distributed.run --nproc_per_node=2 rank_faults.py \
        CONFIG LOCKED_WORK_DIR WORK_DIR [ARGS of tools/train.py]

1. ``tools/train.py CONFIG --work-dir LOCKED_WORK_DIR ARGS``, a work dir
   the test's own process has locked: every rank must raise
   ``WorkDirLockedError`` (rank 0 finds the lock; rank 1 learns it from
   rank 0) and prints ``rank R refused: MESSAGE``.
2. ``tools/train.py CONFIG --work-dir WORK_DIR ARGS``: CONFIG's
   :class:`FreezeRankHook` stops rank 1 (SIGSTOP) before an iteration;
   rank 0 must then fail with ``RankFailureError`` within
   ``env_cfg.dist_cfg.timeout``. Rank 1 stays stopped until the test kills
   it.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

TRAIN = Path(__file__).resolve().parents[3] / 'tools' / 'train.py'


@HOOKS.register_module()
class FreezeRankHook(Hook):
    """Stop rank ``rank`` (SIGSTOP) before training iteration ``iteration``
    (0-based), after writing ``{"pid": ..., "time": ...}`` to
    ``stop_file`` (atomically: a temporary file renamed)."""

    def __init__(self, rank: int, iteration: int, stop_file: str):
        self.rank, self.iteration, self.stop_file = rank, iteration, stop_file

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.rank != self.rank or runner.iter != self.iteration:
            return
        tmp = f'{self.stop_file}.tmp'
        with open(tmp, 'w') as f:
            json.dump(dict(pid=os.getpid(), time=time.time()), f)
        os.replace(tmp, self.stop_file)
        os.kill(os.getpid(), signal.SIGSTOP)


def main() -> None:
    config, locked, work_dir, *args = sys.argv[1:]
    from mmst.engine.work_dir_lock import WorkDirLockedError
    from tools import train

    rank = os.environ['RANK']
    sys.argv = [str(TRAIN), config, '--work-dir', locked, *args]
    try:
        train.main()
    except WorkDirLockedError as e:
        print(f'rank {rank} refused: {e}', flush=True)
    else:
        print(f'rank {rank} trained in the locked work dir', flush=True)
        sys.exit(3)
    sys.argv = [str(TRAIN), config, '--work-dir', work_dir, *args]
    train.main()


if __name__ == '__main__':
    main()
