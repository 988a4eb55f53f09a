"""Train a toy model with MMEngine's Runner on 2 CPU ranks (gloo).

Launched by ``tests/test_foundation/test_distributed_runner.py`` as::

    python -m torch.distributed.run --nproc_per_node=2 ddp_train.py OUT_DIR

Each rank writes ``OUT_DIR/rank{RANK}.pth`` with its flattened parameters
before wrapping, after wrapping (DDP broadcasts rank 0's) and after training.
"""

import argparse
import os
import os.path as osp
from typing import Dict, Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmengine.model import BaseModel, MMDistributedDataParallel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset


class ToyClassifier(BaseModel):
    """An MLP classifier without batch-dependent normalisation (torch's
    SyncBatchNorm refuses CPU tensors)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(
        self,
        inputs: torch.Tensor,
        labels: Optional[torch.Tensor] = None,
        mode: str = 'tensor',
    ):
        logits = self.net(inputs)
        if mode == 'loss':
            return dict(loss=F.cross_entropy(logits, labels))
        return logits


class ToyDataset(Dataset):
    """64 random points labelled by the argmax of three linear functions."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(64, 8, generator=gen)
        self.y = (self.x @ torch.randn(8, 3, generator=gen)).argmax(dim=1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: int) -> Dict[str, torch.Tensor]:
        return dict(inputs=self.x[idx], labels=self.y[idx])


def flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('out_dir')
    args = parser.parse_args()

    # MMEngine's init_dist calls torch.cuda.set_device(LOCAL_RANK), which
    # fails on a machine without a GPU. With the default process group
    # already up, Runner.setup_env skips init_dist.
    dist.init_process_group('gloo')
    rank = dist.get_rank()

    torch.manual_seed(100 + rank)  # different initial weights per rank
    model = ToyClassifier()
    init = flat_params(model)

    runner = Runner(
        model=model,
        work_dir=osp.join(args.out_dir, 'work_dir'),
        experiment_name='ddp_toy',
        launcher='pytorch',
        # Runner reads model_wrapper_cfg from its cfg (it is not an argument
        # of Runner.__init__). wrap_model only *defaults* device_ids to
        # [LOCAL_RANK] (which DDP rejects for CPU modules), so an explicit
        # device_ids=None wins.
        cfg=dict(
            model_wrapper_cfg=dict(
                type='MMDistributedDataParallel', device_ids=None
            )
        ),
        train_dataloader=dict(
            dataset=ToyDataset(),
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True, seed=0),
            collate_fn=dict(type='default_collate'),
        ),
        train_cfg=dict(by_epoch=False, max_iters=8),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(
            type='LinearLR', start_factor=0.5, by_epoch=False, end=4
        ),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=8, by_epoch=False),
            logger=dict(type='LoggerHook', interval=4),
        ),
        randomness=dict(seed=0),
        log_level='WARNING',
    )

    wrapped = runner.model
    assert isinstance(wrapped, MMDistributedDataParallel), type(wrapped)
    assert wrapped.device_ids is None, wrapped.device_ids
    after_wrap = flat_params(wrapped.module)

    runner.train()

    torch.save(
        dict(
            rank=rank,
            world_size=dist.get_world_size(),
            local_rank=int(os.environ['LOCAL_RANK']),
            backend=dist.get_backend(),
            device_ids=wrapped.device_ids,
            init=init,
            after_wrap=after_wrap,
            final=flat_params(wrapped.module),
            iters=runner.iter,
        ),
        osp.join(args.out_dir, f'rank{rank}.pth'),
    )
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
