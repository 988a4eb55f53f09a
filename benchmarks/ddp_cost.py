"""Communication and speed of data-parallel ST++ on CPU processes.

    python benchmarks/ddp_cost.py [--iters 10] [--batch 16]

Trains the Fashion-MNIST ST++ model (``--config``; ResNet-20, N=3 sub-
networks, random smaller inputs) on synthetic 28 x 28 batches of
``--batch`` images per process, and reports per optimizer step:

- ``mmst``: :class:`mmst.STDistributedDataParallel` (one flat all-reduce of
  all gradients per step, buffers broadcast before the step);
- ``naive``: the same all-reduce after each of the N + 1 backward passes
  (and the same buffer broadcast);
- ``torchddp``: torch's ``DistributedDataParallel`` with
  ``find_unused_parameters=True``, every pass a forward of the DDP module
  (its buckets reduced through the default all-reduce comm hook, so that
  they pass through ``torch.distributed.all_reduce``; its own buffer
  broadcast runs in C++ and is not counted);

counting calls and bytes of ``torch.distributed.all_reduce`` and
``broadcast`` (patched in the worker processes to count), and the steps per
second of ``mmst`` with 1 and with 2 processes (same batch per process).
The last line is a summary::

    allreduce_calls_per_step=... naive=... bytes_per_step=...
    speed_2proc_vs_1proc=...

Each configuration runs under ``python -m torch.distributed.run`` (gloo,
one torch thread per process); the script starts them itself.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'configs/mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py'
MODES = ('mmst', 'naive', 'torchddp')


# -- worker (one per rank) ---------------------------------------------------
class CommCounter:
    """Counts calls and bytes of ``torch.distributed`` collectives by
    wrapping the module functions (the callers look them up at call time).
    """

    def __init__(self, names=('all_reduce', 'broadcast')) -> None:
        import torch.distributed as dist

        self.calls: Counter = Counter()
        self.bytes: Counter = Counter()
        self.active = False
        for name in names:
            setattr(dist, name, self._counted(name, getattr(dist, name)))

    def _counted(self, name, func):
        def counted(tensor, *args, **kwargs):
            if self.active:
                self.calls[name] += 1
                self.bytes[name] += tensor.numel() * tensor.element_size()
            return func(tensor, *args, **kwargs)

        return counted


def build_model(config: str):
    """The ST model of ``config``, in train mode."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmst.apis import register_scope_modules
    from mmst.registry import MODELS

    cfg = Config.fromfile(config)
    register_scope_modules(cfg)
    init_default_scope(cfg.default_scope)
    return MODELS.build(cfg.model).train()


def synthetic_batch(n: int, seed: int) -> dict:
    import torch
    from mmpretrain.structures import DataSample

    g = torch.Generator().manual_seed(seed)
    inputs = [torch.rand(1, 28, 28, generator=g) * 255 for _ in range(n)]
    labels = torch.randint(0, 10, (n,), generator=g).tolist()
    samples = [DataSample().set_gt_label(y) for y in labels]
    return dict(inputs=inputs, data_samples=samples)


def make_step(model, mode: str):
    """``step(data, optim_wrapper)`` of a data-parallel mode and the class
    of its optimizer wrapper."""
    import torch.nn as nn
    from mmengine.optim import OptimWrapper
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    from torch.nn.parallel import DistributedDataParallel

    from mmst.models.wrappers import STDistributedDataParallel

    if mode == 'mmst':
        return STDistributedDataParallel(model).train_step, OptimWrapper
    if mode == 'naive':
        wrapper = STDistributedDataParallel(model)

        class SyncEveryBackward(OptimWrapper):
            def backward(self, loss, **kwargs):
                super().backward(loss, **kwargs)
                wrapper.sync_gradients()

        def naive_step(data, optim_wrapper):
            wrapper._broadcast_buffers()
            return model.train_step(data, optim_wrapper, sync_gradients=None)

        return naive_step, SyncEveryBackward

    class PassModule(nn.Module):
        def __init__(self, st) -> None:
            super().__init__()
            self.st, self.task = st, st.task

        def forward(self, inputs, samples, teacher=None, distill=None):
            arch = self.st.architecture
            if teacher is None:
                return self.task.main_pass(arch, inputs, samples)
            return self.task.subnet_pass(
                arch, inputs, samples, teacher, distill
            )

    class ThroughDDP:
        def __init__(self, ddp) -> None:
            self.ddp, self.task = ddp, ddp.module.task

        def __getattr__(self, name):
            return getattr(self.task, name)

        def main_pass(self, arch, inputs, samples):
            return self.ddp(inputs, samples)

        def subnet_pass(self, arch, inputs, samples, teacher, distill):
            return self.ddp(inputs, samples, teacher, distill)

    ddp = DistributedDataParallel(
        PassModule(model), device_ids=None, find_unused_parameters=True
    )
    ddp.register_comm_hook(None, default_hooks.allreduce_hook)
    model.task = ThroughDDP(ddp)
    return model.train_step, OptimWrapper


def worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist
    from mmengine.logging import MessageHub

    torch.set_num_threads(1)
    dist.init_process_group('gloo')
    rank, world = dist.get_rank(), dist.get_world_size()
    counter = CommCounter()
    results = {}
    for mode in args.modes.split(','):
        torch.manual_seed(0)
        model = build_model(args.config)
        step, wrapper_cls = make_step(model, mode)
        optim_wrapper = wrapper_cls(
            torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        )
        hub = MessageHub.get_current_instance()
        batches = [
            synthetic_batch(args.batch, 1000 * i + rank)
            for i in range(args.warmup + args.iters)
        ]
        counter.calls.clear()
        counter.bytes.clear()
        for i, data in enumerate(batches):
            if i == args.warmup:
                dist.barrier()
                counter.active, start = True, time.perf_counter()
            hub.update_info('iter', i)
            step(data, optim_wrapper)
        counter.active = False
        dist.barrier()
        elapsed = time.perf_counter() - start
        results[mode] = dict(
            steps_per_s=args.iters / elapsed,
            calls={k: v / args.iters for k, v in counter.calls.items()},
            bytes={k: v / args.iters for k, v in counter.bytes.items()},
            grad_bytes=sum(
                p.numel() * p.element_size()
                for p in model.parameters()
                if p.requires_grad
            ),
            num_subnets=model.num_subnets,
        )
    if rank == 0:
        Path(args.out).write_text(json.dumps(dict(world=world, **results)))
    dist.destroy_process_group()


# -- driver ------------------------------------------------------------------
def launch(nproc: int, modes: List[str], args, out: Path) -> Dict:
    import socket

    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS='1')
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(REPO), env.get('PYTHONPATH')) if p
    )
    cmd = [
        sys.executable,
        '-m',
        'torch.distributed.run',
        f'--nproc_per_node={nproc}',
        '--master_addr=127.0.0.1',
        f'--master_port={port}',
        __file__,
        '--worker',
        '--out',
        str(out),
        '--modes',
        ','.join(modes),
        '--config',
        args.config,
        '--iters',
        str(args.iters),
        '--warmup',
        str(args.warmup),
        '--batch',
        str(args.batch),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f'{" ".join(cmd)} failed:\n{proc.stderr[-6000:]}')
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--config', default=str(CONFIG))
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--batch', type=int, default=16, help='per process')
    parser.add_argument('--modes', default=','.join(MODES))
    parser.add_argument(
        '--worker', action='store_true', help=argparse.SUPPRESS
    )
    parser.add_argument('--out', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    with tempfile.TemporaryDirectory() as tmp:
        one = launch(1, ['mmst'], args, Path(tmp) / 'one.json')
        two = launch(2, list(MODES), args, Path(tmp) / 'two.json')
    n = two['mmst']['num_subnets']
    print(
        f'config {Path(args.config).name}: N={n} sub-networks, batch '
        f'{args.batch} per process, {args.iters} timed steps after '
        f'{args.warmup} warm-up steps; gradients '
        f'{two["mmst"]["grad_bytes"]} bytes'
    )
    print(
        f'{"mode":<10}{"procs":>6}{"all_reduce/step":>17}'
        f'{"all_reduce B/step":>19}{"broadcast/step":>16}'
        f'{"broadcast B/step":>18}{"steps/s":>9}'
    )
    rows = [('mmst', 1, one['mmst'])] + [(m, 2, two[m]) for m in MODES]
    for mode, procs, res in rows:
        calls, nbytes = res['calls'], res['bytes']
        print(
            f'{mode:<10}{procs:>6}{calls.get("all_reduce", 0):>17.1f}'
            f'{nbytes.get("all_reduce", 0):>19.0f}'
            f'{calls.get("broadcast", 0):>16.1f}'
            f'{nbytes.get("broadcast", 0):>18.0f}'
            f'{res["steps_per_s"]:>9.2f}'
        )
    speed = two['mmst']['steps_per_s'] / one['mmst']['steps_per_s']
    print(
        f'allreduce_calls_per_step={two["mmst"]["calls"]["all_reduce"]:g} '
        f'naive={two["naive"]["calls"]["all_reduce"]:g} '
        f'bytes_per_step={two["mmst"]["bytes"]["all_reduce"]:.0f} '
        f'speed_2proc_vs_1proc={speed:.2f}'
    )


if __name__ == '__main__':
    main()
