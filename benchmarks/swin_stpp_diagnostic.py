"""Does the main network of the Swin ST++ Fashion-MNIST config learn?

    python benchmarks/swin_stpp_diagnostic.py [VARIANT ...]
        [--iters 40] [--work-dir work_dirs/swin_stpp_diagnostic]

Trains ``configs/mmpretrain/fashion_mnist/swin_stpp_fmnist.py`` for
``--iters`` iterations of 128 images (constant learning rate, no
validation) in each variant and prints the main network's cross-entropy
(``loss_main``) every 10 iterations; chance is ln 10 = 2.30:

- ``default``: the config as shipped (N=3, KL on LayerNorm-normalised
  logits, random smaller inputs);
- ``noresize``: ``input_resize=None``;
- ``task``: sub-networks trained with the cross-entropy
  (``subnet_loss='task'``) instead of the KL;
- ``ct``: ``num_subnets=0`` (conventional training through the same step).

Results and the reading of them: docs/backbones.md ("Swin").
"""

import argparse
import re

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmst.apis import prepare_config

CONFIG = 'configs/mmpretrain/fashion_mnist/swin_stpp_fmnist.py'
VARIANTS = ('default', 'noresize', 'task', 'ct')


def variant_config(variant: str, iters: int, work_dir: str) -> Config:
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = f'{work_dir}/{variant}'
    batch = cfg.train_dataloader.batch_size
    cfg.train_dataloader.dataset.indices = batch * iters
    cfg.train_cfg.max_epochs = 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 10
    cfg.default_hooks.checkpoint = None
    if variant == 'noresize':
        cfg.model.input_resize = None
    elif variant == 'task':
        cfg.model.subnet_loss = 'task'
    elif variant == 'ct':
        cfg.model.num_subnets = 0
    return cfg


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument(
        'variants', nargs='*', help=f'of {", ".join(VARIANTS)} (default: all)'
    )
    p.add_argument('--iters', type=int, default=40)
    p.add_argument('--work-dir', default='work_dirs/swin_stpp_diagnostic')
    args = p.parse_args()
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        p.error(f'unknown variants {sorted(unknown)}; allowed: {VARIANTS}')
    torch.set_num_threads(1)
    rows = {}
    for variant in args.variants or VARIANTS:
        runner = Runner.from_cfg(
            prepare_config(variant_config(variant, args.iters, args.work_dir))
        )
        runner.train()
        scalars = f'{runner.log_dir}/vis_data/scalars.json'
        losses = []
        for line in open(scalars):
            key = 'loss_main' if variant != 'ct' else 'loss'
            match = re.search(rf'"{key}": ([0-9.]+)', line)
            if match:
                losses.append(float(match.group(1)))
        rows[variant] = losses
    print('main cross-entropy every 10 iterations (chance 2.30):')
    for variant, losses in rows.items():
        print(f'{variant:9s}', ' '.join(f'{v:.2f}' for v in losses))


if __name__ == '__main__':
    main()
