"""The small Swin and the KL: which sub-network losses let its main
network learn?

    python benchmarks/swin_stpp_diagnostic.py [VARIANT ...]
        [--iters 40 | --train-images N] [--work-dir DIR]
    python benchmarks/swin_stpp_diagnostic.py --at-init [--work-dir DIR]

Each variant is ``configs/mmpretrain/fashion_mnist/swin_stpp_fmnist.py``
(trained from scratch, seed 0, one thread) with some config keys changed:

- ``task``: the config as shipped (sub-networks on the labels,
  ``subnet_loss='task'``, their cross-entropy on LayerNorm-normalised
  logits); ``task-none``: the same on raw logits;
- ``kl``: the paper's knob, ``subnet_loss='kl'`` (KL to the main network's
  LayerNorm-normalised logits, "KL-"); ``kl-noresize``: without the random
  smaller inputs; ``kl-mainnorm``: the main cross-entropy on normalised
  logits too (the authors' ImageNet recipe); ``kl-l2``: L2 instead of
  LayerNorm; ``kl-none``: plain KL (ST's); ``kl-n1``: one sub-network per
  iteration; ``kl-third``: the KL weighted 1/3; ``kl-nodp``: no stochastic
  depth (Swin's default ``drop_path_rate=0.1``);
- ``ct``: ``swin_ct_fmnist.py``, conventional training.

Three measurements:

- default: ``--iters`` iterations of 128 images at a constant learning
  rate, no validation; prints the main network's cross-entropy
  (``loss_main``), the mean of each 10 iterations (chance: ln 10 = 2.30).
  The run trains on the first 128 x ``--iters`` images, shuffled, so a
  shorter run sees other images in another order: its curve is not the
  start of a longer one;
- ``--train-images N``: one epoch on the first N training images with the
  config's schedule, then the test accuracy of the main network and of the
  sub-networks of ``val_cfg`` (the loafing view, as
  ``tools/embedded_default.py``);
- ``--at-init``: one batch through the initialised ResNet-20, ConvNeXt and
  Swin (``kl``) ST++ configs: the losses and gradient norms of the main
  pass and of three sub-network passes.

Results and the reading of them: docs/backbones.md ("The small Swin and
the KL").
"""

import argparse
import os.path as osp
import re
import sys

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmst.apis import prepare_config
from mmst.subnet import subnet_depths

HERE = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(HERE, 'tools'))
from embedded_default import format_table, train_and_evaluate  # noqa: E402

CONFIG = 'configs/mmpretrain/fashion_mnist/swin_stpp_fmnist.py'
CT_CONFIG = 'configs/mmpretrain/fashion_mnist/swin_ct_fmnist.py'
KL = {'model.subnet_loss': 'kl'}
#: variant -> config keys changed
VARIANTS = {
    'task': {},
    'task-none': {'model.logit_norm': 'none'},
    'kl': KL,
    'kl-noresize': {**KL, 'model.input_resize': None},
    'kl-mainnorm': {**KL, 'model.normalize_main_logits': True},
    'kl-l2': {**KL, 'model.logit_norm': 'l2'},
    'kl-none': {**KL, 'model.logit_norm': 'none'},
    'kl-n1': {**KL, 'model.num_subnets': 1},
    'kl-third': {**KL, 'model.distill': dict(loss_weight=1 / 3)},
    'kl-nodp': {**KL, 'model.architecture.backbone.drop_path_rate': 0.0},
    'ct': {},  # CT_CONFIG
}

#: (config, keys changed) of --at-init: the Fashion-MNIST configs with the KL
AT_INIT = [
    ('configs/mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py', {}),
    ('configs/mmpretrain/fashion_mnist/convnext_stpp_fmnist.py', {}),
    (CONFIG, KL),
]


def config_of(variant: str) -> str:
    """The config a variant changes: the CT config for ``ct``."""
    return CT_CONFIG if variant == 'ct' else CONFIG


def loss_curve(variant: str, iters: int, work_dir: str) -> list:
    """``loss_main`` every 10 of ``iters`` iterations of ``variant``."""
    cfg = Config.fromfile(osp.join(HERE, config_of(variant)))
    cfg.merge_from_dict(VARIANTS[variant])
    cfg.work_dir = osp.join(work_dir, variant)
    batch = cfg.train_dataloader.batch_size
    cfg.train_dataloader.dataset.indices = batch * iters
    cfg.train_cfg.max_epochs = 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 10
    cfg.default_hooks.checkpoint = None
    runner = Runner.from_cfg(prepare_config(cfg))
    runner.train()
    key = 'loss' if variant == 'ct' else 'loss_main'
    losses = []
    for line in open(f'{runner.log_dir}/vis_data/scalars.json'):
        match = re.search(rf'"{key}": ([0-9.]+)', line)
        if match:
            losses.append(float(match.group(1)))
    return losses


def at_initialisation(config: str, overrides: dict, work_dir: str) -> None:
    """One batch of 128 training images through the initialised model of
    ``config``: the spread of the main network's logits (per image, and of
    their input-dependent part), then the loss and the gradient norm of the
    main pass and of three sub-network passes, each backwarded alone."""
    cfg = Config.fromfile(osp.join(HERE, config))
    cfg.merge_from_dict(overrides)
    cfg.work_dir = osp.join(work_dir, 'init')
    cfg.log_level = 'WARNING'
    runner = Runner.from_cfg(prepare_config(cfg))
    model = runner.model
    model.init_weights()
    model.train()
    data = model.data_preprocessor(next(iter(runner.train_dataloader)), True)
    inputs, samples = data['inputs'], data['data_samples']
    arch, task = model.architecture, model.task

    def grad_norm() -> float:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        model.zero_grad()
        return norm.item()

    with torch.no_grad():
        z = task.raw_logits(arch, inputs)
    spread = (z - z.mean(0)).std(-1).mean().item()
    changed = ''.join(
        f' ({k[len("model.") :]}={v!r})' for k, v in overrides.items()
    )
    std = z.std(-1).mean().item()
    print(
        f'{osp.basename(config)}{changed}: logits std {std:.3f}, '
        f'input-dependent part {spread:.3f}'
    )
    losses, teacher = task.main_pass(arch, inputs, samples)
    loss, _ = model.parse_losses(losses)
    loss.backward()
    print(
        f'  main       CE {loss.item():.3f}  gradient norm {grad_norm():.2f}'
    )
    shorter = min(inputs.shape[-2:])
    for i in range(1, 4):
        subnet, size = model.sample(i, shorter)
        with model.as_subnet(subnet):
            sub_inputs, sub_samples = task.rescale(
                inputs, samples, size / shorter
            )
            losses = task.subnet_pass(
                arch, sub_inputs, sub_samples, teacher, model.distill
            )
            loss, _ = model.parse_losses(losses)
            loss.backward()
        depths = subnet_depths(subnet)
        print(
            f'  sub {depths} {size:2d}px  {model.subnet_loss.upper()} '
            f'{loss.item():.3f}  gradient norm {grad_norm():.2f}'
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument(
        'variants',
        nargs='*',
        help=f'of {", ".join(VARIANTS)} (default: all)',
    )
    p.add_argument(
        '--iters',
        type=int,
        default=40,
        help='iterations of 128 images per variant (default 40), on the '
        'first 128 x ITERS training images',
    )
    p.add_argument(
        '--train-images',
        type=int,
        help='one epoch on the first N training images, then the test '
        'accuracy of the main network and the sub-networks',
    )
    p.add_argument(
        '--at-init',
        action='store_true',
        help='only the losses and gradient norms of one batch at '
        'initialisation, for the ResNet-20, ConvNeXt and Swin (KL) configs',
    )
    p.add_argument('--work-dir', default='work_dirs/swin_stpp_diagnostic')
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.at_init:
        if args.variants or args.train_images is not None:
            p.error(
                '--at-init measures the three configs it names; it '
                'takes no variants and no --train-images'
            )
        torch.manual_seed(0)
        for config, overrides in AT_INIT:
            at_initialisation(config, overrides, args.work_dir)
        return
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        p.error(
            f'unknown variants {sorted(unknown)}; allowed: {list(VARIANTS)}'
        )
    variants = args.variants or list(VARIANTS)
    if args.train_images is None:
        rows = {v: loss_curve(v, args.iters, args.work_dir) for v in variants}
        print('main cross-entropy, mean of each 10 iterations (chance 2.30):')
        for variant, losses in rows.items():
            print(f'{variant:12s}', ' '.join(f'{v:.2f}' for v in losses))
        return
    run_args = argparse.Namespace(
        epochs=1,
        train_images=args.train_images,
        bn_recal_images=0,  # LayerNorm only
        seed=0,
        data_root=osp.join(HERE, 'data', 'fashion_mnist'),
    )
    metrics = {
        v: train_and_evaluate(
            config_of(v),
            VARIANTS[v],
            osp.join(args.work_dir, f'{v}_{args.train_images}'),
            run_args,
        )['metrics']
        for v in variants
    }
    print(
        f'\nFashion-MNIST test accuracy (%), small Swin, 1 epoch on '
        f'{args.train_images} training images:\n'
    )
    print(format_table(metrics, '{:.2f}'))


if __name__ == '__main__':
    main()
