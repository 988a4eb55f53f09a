"""ST++ data parallel on 2 CPU ranks against single-process training.

Launched by ``tests/test_distributed/test_st_parity.py`` as::

    python -m torch.distributed.run --nproc_per_node=2 st_parity.py OUT_DIR \
        --modes mmst,mmst_accum2,nosync,torchddp

Every iteration has a global batch of ``2 * PER_RANK`` samples built
deterministically here; rank ``r`` trains on its ``r``-th half. The losses
are batch means and the model has no batch-dependent normalisation
(GroupNorm), so the mean of the two half-batch gradients is the full-batch
gradient and correct data parallel training equals the single-process run
over the global batch (``ref_accum{k}.pth``, computed by rank 0 in its
own, unwrapped model). Each rank starts from different weights: the
wrappers must broadcast rank 0's.

Modes (``{mode}_rank{r}.pth``):

- ``mmst``: :class:`mmst.STDistributedDataParallel` (one all-reduce per
  optimizer step);
- ``mmst_accum2``: the same with ``accumulative_counts=2`` and a
  ``subnet_schedule`` (:data:`SCHEDULE`: no sub-network pass at iteration
  0, then weights 1/3, 2/3, 1; its reference has the same);
- ``nosync``: the wrapper is built (weights broadcast) but the step is
  called with ``sync_gradients=None``, i.e. without the all-reduce;
- ``torchddp``: plain ``torch.nn.parallel.DistributedDataParallel`` with
  ``find_unused_parameters=True``, every pass (main and each sub-network)
  a forward of the DDP module followed by its backward (DDP all-reduces
  after each of the N + 1 backward passes);
- ``torchddp_main``: the same DDP module, but only the main pass goes
  through its forward; the sub-network passes call the wrapped module
  directly (their gradients stay local).
"""

import argparse
import os.path as osp
from typing import Dict, List, Optional

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from torch.nn.parallel import DistributedDataParallel

from mmst.models.wrappers import STDistributedDataParallel
from mmst.subnet import subnet_depths
from tests.test_core.common import batch, build, st_cfg

MODES = ('mmst', 'mmst_accum2', 'nosync', 'torchddp', 'torchddp_main')
PER_RANK = 4
NUM_SUBNETS = 3
SEED = 7
#: The ``subnet_schedule`` of the ``mmst_accum2`` mode and its reference.
SCHEDULE = dict(begin=1, warmup=2)


def build_model(init_seed: int, schedule: Optional[dict] = None) -> nn.Module:
    """A GroupNorm ResNet (3 stages x 2 blocks) in ST++ (N=3, LayerNorm
    KL, random smaller inputs, the ``subnet_schedule`` given); the default
    space lets every stage skip its second block."""
    torch.manual_seed(init_seed)
    model = build(
        st_cfg(
            arch=dict(norm='GN'),
            num_subnets=NUM_SUBNETS,
            logit_norm='layernorm',
            input_resize=dict(ratio_range=(0.43, 1.0)),
            seed=SEED,
            subnet_schedule=schedule,
        )
    )
    return model.train()


def global_batch(iteration: int, ranks: int) -> dict:
    return batch(n=PER_RANK * ranks, size=28, seed=1000 + iteration)


def shard(data: dict, rank: int) -> dict:
    lo, hi = rank * PER_RANK, (rank + 1) * PER_RANK
    return dict(
        inputs=data['inputs'][lo:hi], data_samples=data['data_samples'][lo:hi]
    )


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat(
        [p.detach().reshape(-1).clone() for p in model.parameters()]
    )


def optim_for(model: nn.Module, accum: int) -> OptimWrapper:
    optimizer = torch.optim.SGD(
        model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4
    )
    return OptimWrapper(optimizer, accumulative_counts=accum)


def sampled_passes(model: nn.Module) -> List[dict]:
    """The sub-networks and input sizes drawn for the current iteration
    (they run from the schedule's ``begin`` on)."""
    passes = []
    for i in range(1, NUM_SUBNETS + 1):
        subnet, size = model.sample(i, 28)
        passes.append(dict(depths=subnet_depths(subnet), size=size))
    return passes


class PassModule(nn.Module):
    """One ST pass (main, or sub-network against ``teacher``) as a module
    forward, so that torch DDP sees each pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.task = model.task

    def forward(self, inputs, samples, teacher=None, distill=None):
        arch = self.model.architecture
        if teacher is None:
            return self.task.main_pass(arch, inputs, samples)
        return self.task.subnet_pass(arch, inputs, samples, teacher, distill)


class PassesThroughDDP:
    """Stands in for the model's task adapter: every pass (or only the main
    pass, ``main_only``) goes through a torch DDP forward, and its backward
    through DDP's reducer."""

    def __init__(
        self, ddp: DistributedDataParallel, main_only: bool = False
    ) -> None:
        self.ddp = ddp
        self.task = ddp.module.task
        self.main_only = main_only

    def __getattr__(self, name: str):
        return getattr(self.task, name)

    def main_pass(self, arch, inputs, samples):
        return self.ddp(inputs, samples)

    def subnet_pass(self, arch, inputs, samples, teacher, distill):
        module = self.ddp.module if self.main_only else self.ddp
        return module(inputs, samples, teacher, distill)


def train(
    model: nn.Module,
    iters: int,
    accum: int,
    rank: Optional[int],
    ranks: int,
    mode: Optional[str] = None,
) -> Dict:
    """Train ``iters`` iterations; ``rank=None`` is the single-process
    reference over the whole global batch."""
    init = flat_params(model)
    step = model.train_step
    if mode in ('mmst', 'mmst_accum2'):
        step = STDistributedDataParallel(model).train_step
    elif mode == 'nosync':
        wrapper = STDistributedDataParallel(model)

        def step(data, optim_wrapper):
            return wrapper.module.train_step(
                data, optim_wrapper, sync_gradients=None
            )

    elif mode in ('torchddp', 'torchddp_main'):
        ddp = DistributedDataParallel(
            PassModule(model), device_ids=None, find_unused_parameters=True
        )
        model.task = PassesThroughDDP(ddp, main_only=mode == 'torchddp_main')
    after_wrap = flat_params(model)

    optim_wrapper = optim_for(model, accum)
    hub = MessageHub.get_current_instance()
    passes, losses, weights = [], [], []
    for i in range(iters):
        hub.update_info('iter', i)
        data = global_batch(i, ranks)
        if rank is not None:
            data = shard(data, rank)
        passes.append(sampled_passes(model))
        log_vars = step(data, optim_wrapper)
        losses.append(float(log_vars['loss'].detach()))
        weights.append(log_vars.get('subnet_weight'))
    return dict(
        init=init,
        after_wrap=after_wrap,
        final=flat_params(model),
        passes=passes,
        losses=losses,
        subnet_weights=weights,
        stage_depths=list(model.space.stage_depths),
    )


class GradientCollector(torch.optim.Optimizer):
    """An optimizer whose step stores the gradients instead of updating:
    it lets the model's own ``train_step`` compute one shard's gradients
    of an optimizer step (accumulation included)."""

    def __init__(self, params) -> None:
        super().__init__(list(params), {})
        self.grads: List[Optional[torch.Tensor]] = []

    @torch.no_grad()
    def step(self, closure=None):
        self.grads = [
            None if p.grad is None else p.grad.clone()
            for group in self.param_groups
            for p in group['params']
        ]


def train_shard_order(
    model: nn.Module, iters: int, accum: int, ranks: int
) -> Dict:
    """Single-process training that sums the shards' gradients in the
    order data parallel training does: each shard's gradient of an
    optimizer step is computed by the model's own ``train_step`` (its
    N + 1 passes accumulated, as on a rank), then the shards' gradients are
    summed in float32 and divided by the number of shards (what a 2-rank
    all-reduce and the wrapper's division compute), then one SGD step.
    Every operation is the ranks' own, in the same order and shapes, so a
    correct wrapper equals this bit for bit."""
    init = flat_params(model)
    params = list(model.parameters())
    optim_wrapper = optim_for(model, 1)
    collectors = [
        OptimWrapper(GradientCollector(params), accumulative_counts=accum)
        for _ in range(ranks)
    ]
    hub = MessageHub.get_current_instance()
    for first in range(0, iters, accum):
        window = range(first, min(first + accum, iters))
        for rank, collector in enumerate(collectors):
            for i in window:
                hub.update_info('iter', i)
                model.train_step(
                    shard(global_batch(i, ranks), rank), collector
                )
        with torch.no_grad():
            for j, p in enumerate(params):
                grads = [c.optimizer.grads[j] for c in collectors]
                if all(g is None for g in grads):
                    p.grad = None
                    continue
                total = torch.zeros_like(p)
                for g in grads:
                    total += g if g is not None else torch.zeros_like(p)
                p.grad = total.div_(ranks)
        optim_wrapper.step()
        optim_wrapper.zero_grad()
    return dict(init=init, final=flat_params(model))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('out_dir')
    parser.add_argument('--modes', default=','.join(MODES))
    parser.add_argument('--iters', type=int, default=4)
    args = parser.parse_args()
    modes = args.modes.split(',')
    unknown = set(modes) - set(MODES)
    if unknown:
        raise SystemExit(f'unknown modes {sorted(unknown)}; allowed: {MODES}')

    torch.set_num_threads(1)
    dist.init_process_group('gloo')
    rank, ranks = dist.get_rank(), dist.get_world_size()
    for mode in modes:
        accum = 2 if mode == 'mmst_accum2' else 1
        schedule = SCHEDULE if accum == 2 else None
        # different initial weights per rank: the wrapper broadcasts rank 0's
        result = train(
            build_model(rank, schedule), args.iters, accum, rank, ranks, mode
        )
        result.update(mode=mode, rank=rank, world_size=ranks, accum=accum)
        torch.save(result, osp.join(args.out_dir, f'{mode}_rank{rank}.pth'))
        ref_file = osp.join(args.out_dir, f'ref_accum{accum}.pth')
        if rank == 0 and not osp.exists(ref_file):
            ref = train(
                build_model(0, schedule), args.iters, accum, None, ranks
            )
            ref['shard_order'] = train_shard_order(
                build_model(0, schedule), args.iters, accum, ranks
            )
            torch.save(dict(ref, accum=accum), ref_file)
        dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
