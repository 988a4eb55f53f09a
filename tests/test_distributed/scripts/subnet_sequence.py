"""Record, per rank and iteration, the sub-networks and input sizes an ST
model samples inside a real MMEngine Runner on 2 CPU ranks.

Launched by ``tests/test_distributed/test_launch_paths.py`` as::

    python -m torch.distributed.run --nproc_per_node=2 subnet_sequence.py \
        WORK_DIR DATA_ROOT OUT.json [--diff-rank-seed] [--max-epochs N]
        [--then-resume RESUMED_WORK_DIR CKPT RESUMED_OUT.json]

``--then-resume`` runs a second Runner in the same processes (one launch),
resumed from ``CKPT``, and records its sequence too.
"""

import argparse
import json

import torch.distributed as dist
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

from tests.test_core.common import runner_cfg, st_cfg

NUM_SUBNETS = 3


class RecordSequence(Hook):
    """Before each training iteration: the N sampled (depths, size)."""

    def __init__(self) -> None:
        self.records = {}

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        model = runner.model.module
        self.records[runner.iter] = [
            [list(map(len, subnet)), size]
            for subnet, size in (
                model.sample(i, 16) for i in range(1, NUM_SUBNETS + 1)
            )
        ]


def record(args, work_dir: str, out: str, resume=None) -> None:
    """Train in a Runner (resumed from ``resume``), write the sequence."""
    model = st_cfg(
        num_subnets=NUM_SUBNETS,
        input_resize=dict(ratio_range=(0.43, 1.0)),
        arch=dict(in_channels=3),
    )
    cfg = Config(
        runner_cfg(
            work_dir,
            args.data_root,
            model,
            max_epochs=args.max_epochs,
            batch_size=3,
        )
    )
    cfg.experiment_name = f'sequence_{"resumed" if resume else "full"}'
    cfg.model_wrapper_cfg = dict(type='mmst.STDistributedDataParallel')
    cfg.launcher = 'pytorch'
    cfg.randomness = dict(seed=None, diff_rank_seed=args.diff_rank_seed)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_cfg = dict(by_epoch=True, max_epochs=args.max_epochs)
    if resume:
        cfg.resume, cfg.load_from = True, resume
    runner = Runner.from_cfg(cfg)
    hook = RecordSequence()
    runner.register_hook(hook)
    runner.train()
    records = [None, None]
    dist.all_gather_object(records, hook.records)
    if dist.get_rank() == 0:
        with open(out, 'w') as f:
            json.dump(records, f)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('work_dir')
    parser.add_argument('data_root')
    parser.add_argument('out')
    parser.add_argument('--diff-rank-seed', action='store_true')
    parser.add_argument('--max-epochs', type=int, default=2)
    parser.add_argument(
        '--then-resume', nargs=3, metavar=('WORK_DIR', 'CKPT', 'OUT')
    )
    args = parser.parse_args()

    dist.init_process_group('gloo')
    record(args, args.work_dir, args.out)
    if args.then_resume:
        work_dir, ckpt, out = args.then_resume
        record(args, work_dir, out, resume=ckpt)
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
