"""Self-distillation (ST++'s KL-) on small Fashion-MNIST backbones: which
sub-network losses and schedules let the main network learn?

    python benchmarks/kl_diagnostic.py [VARIANT ...] [--backbone B]
        [--seeds S ...] [--iters 40 | --train-images N] [--work-dir DIR]
    python benchmarks/kl_diagnostic.py --at-init [--backbone B ...]

``--backbone`` (``swin``, the default, ``vit``, ``resnet20``,
``convnext``) picks ``configs/mmpretrain/fashion_mnist/{B}_stpp_fmnist.py``;
each variant is that config (trained from scratch, one thread, each seed of
``--seeds``, default 0) with some config keys changed. Every ST++ variant
sets ``subnet_loss`` and ``subnet_schedule`` itself, so it does not depend
on what the config ships:

- ``task``: sub-networks on the labels (``subnet_loss='task'``, their
  cross-entropy on LayerNorm-normalised logits); ``task-none``: the same
  on raw logits;
- ``kl``: the paper's knob, ``subnet_loss='kl'`` (KL to the main network's
  LayerNorm-normalised logits, "KL-") from the first iteration;
  ``kl-begin``: sub-network passes from iteration ``T // 5`` on
  (``subnet_schedule`` ``begin``; ``T`` = the run's iterations, the
  authors' ``sampling_begin_epoch`` in iterations); ``kl-warmup``: from the
  first iteration, their weight rising linearly over ``T // 2``
  iterations; ``kl-begin-warmup``: both;
- ``kl-noresize``: without the random smaller inputs; ``kl-mainnorm``:
  the main cross-entropy on normalised logits too (the authors' ImageNet
  recipe); ``kl-l2``: L2 instead of LayerNorm; ``kl-none``: plain KL
  (ST's); ``kl-n1``: one sub-network per iteration; ``kl-third``: the KL
  weighted 1/3; ``kl-nodp``: no stochastic depth (Swin's default
  ``drop_path_rate=0.1``; not for ``resnet20``); ``kl-st``: ST's knobs
  (NeurIPS'22, as ``configs/mmpretrain/imagenet/vit-b_st_in1k.py``): one
  sub-network per iteration, plain KL, no smaller inputs;
- ``ct``: ``{B}_ct_fmnist.py``, conventional training;
- ``ct-bn1``, ``kl-bn1`` (``resnet20`` only): ``ct`` and ``kl`` with every
  BN weight initialised to 1 (``zero_init_residual=False``), as the
  authors' script; the configs keep mmpretrain's zero-initialised last BN
  of each block.

Three measurements:

- default: ``--iters`` iterations of 128 images at a constant learning
  rate, no validation; prints the main network's cross-entropy
  (``loss_main``), the mean of each 10 iterations (chance: ln 10 = 2.30),
  then a table of the last 10 iterations' mean over the seeds (mean and
  sample standard deviation). The run trains on the first
  128 x ``--iters`` images, shuffled, so a shorter run sees other images
  in another order: its curve is not the start of a longer one. Each
  run's curve is kept in ``DIR/{B}/{variant}_s{seed}_i{iters}.json`` and
  reused when present (delete it to rerun);
- ``--train-images N``: one epoch on the first N training images with the
  config's schedule, then the test accuracy of the main network and of the
  sub-networks of ``val_cfg`` (the loafing view, as
  ``tools/embedded_default.py``);
- ``--at-init``: one batch of 128 images through each backbone's
  initialised ST++ config with the KL (all four unless ``--backbone``
  names some): the losses and gradient norms of the main pass and of three
  sub-network passes; then the share of the teacher's normalised-logit
  variance that is one vector shared by all images, each sub-network's
  per-image correlation with the teacher (at full size and at the smallest
  input), and the cosine and norm ratio of the KL's gradient to the main
  cross-entropy's on the parameters both reach. Named variants (with
  sub-networks: not ``ct``) replace the KL config, e.g.
  ``--at-init kl-bn1 --backbone resnet20``.

Results and the reading of them: docs/backbones.md ("The small Swin,
the small ViT and the KL") and docs/benchmarks.md.
"""

import argparse
import json
import os
import os.path as osp
import re
import statistics
import sys

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from mmst.apis import prepare_config
from mmst.subnet import subnet_depths

HERE = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(HERE, 'tools'))
from embedded_default import format_table, train_and_evaluate  # noqa: E402

BACKBONES = ('swin', 'vit', 'resnet20', 'convnext')
#: --at-init's order (ResNet-20 and ConvNeXt first: they learn with the KL)
AT_INIT_ORDER = ('resnet20', 'convnext', 'swin', 'vit')
CONFIGS = 'configs/mmpretrain/fashion_mnist'
KL = {'model.subnet_loss': 'kl', 'model.subnet_schedule': None}
TASK = {'model.subnet_loss': 'task', 'model.subnet_schedule': None}
#: variant -> config keys changed; the schedule variants are functions of
#: the run's iterations T
VARIANTS = {
    'task': TASK,
    'task-none': {**TASK, 'model.logit_norm': 'none'},
    'kl': KL,
    'kl-begin': lambda t: {**KL, 'model.subnet_schedule': dict(begin=t // 5)},
    'kl-warmup': lambda t: {
        **KL,
        'model.subnet_schedule': dict(warmup=t // 2),
    },
    'kl-begin-warmup': lambda t: {
        **KL,
        'model.subnet_schedule': dict(begin=t // 5, warmup=t // 2),
    },
    'kl-noresize': {**KL, 'model.input_resize': None},
    'kl-mainnorm': {**KL, 'model.normalize_main_logits': True},
    'kl-l2': {**KL, 'model.logit_norm': 'l2'},
    'kl-none': {**KL, 'model.logit_norm': 'none'},
    'kl-n1': {**KL, 'model.num_subnets': 1},
    'kl-third': {**KL, 'model.distill': dict(loss_weight=1 / 3)},
    'kl-nodp': {**KL, 'model.architecture.backbone.drop_path_rate': 0.0},
    'kl-st': {
        **KL,
        'model.num_subnets': 1,
        'model.logit_norm': 'none',
        'model.input_resize': None,
    },
    'ct': {},  # the CT config
    # ResNet-20 only: every BN weight 1, as the authors' initialisation
    # (mmpretrain's default zero-initialises each block's last BN)
    'ct-bn1': {'model.backbone.zero_init_residual': False},
    'kl-bn1': {**KL, 'model.architecture.backbone.zero_init_residual': False},
}
#: variants that set a key only some backbones have -> those backbones
ONLY = {
    'kl-nodp': ('swin', 'vit', 'convnext'),
    'ct-bn1': ('resnet20',),
    'kl-bn1': ('resnet20',),
}
#: the variants run when none is named
DEFAULT_VARIANTS = [
    'ct', 'kl', 'kl-begin', 'kl-warmup', 'kl-begin-warmup', 'task'
]  # fmt: skip

#: the keys --at-init changes: every backbone's ST++ config with the KL
KL_AT_INIT = {
    'resnet20': {},
    'convnext': {},
    'swin': {'model.subnet_loss': 'kl'},
    'vit': {'model.subnet_loss': 'kl'},
}


def config_of(backbone: str, variant: str) -> str:
    """The config a variant changes: the CT config for ``ct``."""
    method = 'ct' if variant.startswith('ct') else 'stpp'
    return f'{CONFIGS}/{backbone}_{method}_fmnist.py'


def overrides_of(variant: str, iters: int) -> dict:
    """The config keys ``variant`` changes in a run of ``iters``
    iterations."""
    keys = VARIANTS[variant]
    return keys(iters) if callable(keys) else keys


def loss_curve(
    backbone: str, variant: str, seed: int, iters: int, work_dir: str
) -> list:
    """``loss_main`` (``loss`` for ``ct``), the mean of every 10 of
    ``iters`` iterations of ``variant`` (floats, nats)."""
    cached = osp.join(work_dir, backbone, f'{variant}_s{seed}_i{iters}.json')
    if osp.exists(cached):
        with open(cached) as f:
            return json.load(f)
    cfg = Config.fromfile(osp.join(HERE, config_of(backbone, variant)))
    cfg.merge_from_dict(overrides_of(variant, iters))
    cfg.work_dir = osp.join(work_dir, backbone, f'{variant}_s{seed}')
    cfg.randomness = dict(seed=seed, deterministic=False)
    batch = cfg.train_dataloader.batch_size
    cfg.train_dataloader.dataset.indices = batch * iters
    cfg.train_cfg.max_epochs = 1
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.param_scheduler = []
    cfg.default_hooks.logger.interval = 10
    cfg.default_hooks.checkpoint = None
    runner = Runner.from_cfg(prepare_config(cfg))
    runner.train()
    key = 'loss' if variant.startswith('ct') else 'loss_main'
    losses = []
    for line in open(f'{runner.log_dir}/vis_data/scalars.json'):
        match = re.search(rf'"{key}": ([0-9.]+)', line)
        if match:
            losses.append(float(match.group(1)))
    os.makedirs(osp.dirname(cached), exist_ok=True)
    with open(cached, 'w') as f:
        json.dump(losses, f)
    return losses


def mean_std(values: list) -> str:
    """``mean +- sample std`` (2 decimals; the mean alone for one value)."""
    if len(values) == 1:
        return f'{values[0]:.2f}'
    return f'{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}'


def summary_table(curves: dict, seeds: list, iters: int) -> str:
    """Markdown table, a row per variant: the mean main cross-entropy of
    the last 10 iterations over ``seeds``, and each seed's.
    ``curves[variant][seed]`` is a :func:`loss_curve`."""
    head = ' | '.join(f'seed {s}' for s in seeds)
    lines = [
        f'| variant | last 10 of {iters} iterations | {head} |',
        '|---|---|' + '---|' * len(seeds),
    ]
    for variant, by_seed in curves.items():
        last = [by_seed[s][-1] for s in seeds]
        cells = ' | '.join(f'{v:.2f}' for v in last)
        lines.append(f'| {variant} | {mean_std(last)} | {cells} |')
    return '\n'.join(lines)


def _grads(model: torch.nn.Module) -> dict:
    """The parameters' gradients by name (cloned), then zeroed."""
    grads = {
        name: p.grad.detach().clone()
        for name, p in model.named_parameters()
        if p.grad is not None
    }
    model.zero_grad()
    return grads


def _norm(grads: dict) -> float:
    return torch.linalg.vector_norm(
        torch.stack([g.norm() for g in grads.values()])
    ).item()


def gradient_agreement(main: dict, other: dict) -> tuple:
    """``(cosine, ||other|| / ||main||)`` of two gradients (name ->
    tensor) on the parameters both have a non-zero gradient for."""
    shared = [
        n
        for n in main
        if n in other and main[n].any().item() and other[n].any().item()
    ]
    a = torch.cat([main[n].flatten() for n in shared])
    b = torch.cat([other[n].flatten() for n in shared])
    cosine = torch.nn.functional.cosine_similarity(a, b, dim=0).item()
    return cosine, (b.norm() / a.norm()).item()


def per_image_correlation(student: torch.Tensor, teacher: torch.Tensor):
    """Pearson correlation of the per-image parts (each logit minus its
    mean over the batch) of two ``(B, C)`` logit tensors, over all B x C
    entries: 1 for equal logits, about 0 for unrelated ones. Give both
    normalised the same way (the batch mean does not commute with a
    per-image scale)."""
    s = student - student.mean(0)
    t = teacher - teacher.mean(0)
    return torch.nn.functional.cosine_similarity(
        s.flatten(), t.flatten(), dim=0
    ).item()


def at_initialisation(config: str, overrides: dict, work_dir: str) -> None:
    """One batch of 128 training images through the initialised model of
    ``config`` (train mode, as the step): the spread of the main network's
    logits (per image, and of their input-dependent part), then the loss
    and the gradient norm of the main pass and of three sub-network passes,
    each backwarded alone; then the teacher's shared share, the students'
    per-image correlations and the gradients' agreement."""
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
    main_grads = _grads(model)
    print(
        f'  main       CE {loss.item():.3f}  gradient norm '
        f'{_norm(main_grads):.2f}'
    )
    shorter = min(inputs.shape[-2:])
    smallest = model.size_sampler.smallest(shorter)
    subnets, summed = [], {}
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
        grads = _grads(model)
        for name, g in grads.items():
            summed[name] = summed[name] + g if name in summed else g
        subnets.append((subnet, grads))
        depths = subnet_depths(subnet)
        print(
            f'  sub {depths} {size:2d}px  {model.subnet_loss.upper()} '
            f'{loss.item():.3f}  gradient norm {_norm(grads):.2f}'
        )
    # the teacher's normalised logits have zero mean per image, so their
    # mean square splits exactly into the batch-mean vector's and the rest
    shared = teacher.mean(0).square().sum() / teacher.square().sum(1).mean()
    print(
        f'  teacher: {100 * shared.item():.0f}% of the normalised-logit '
        'variance is one vector shared by all images'
    )
    for subnet, grads in subnets:
        with torch.no_grad(), model.as_subnet(subnet):
            corr = [
                per_image_correlation(
                    task.logits(
                        arch, task.rescale(inputs, samples, s / shorter)[0]
                    ),
                    teacher,
                )
                for s in (shorter, smallest)
            ]
        cosine, ratio = gradient_agreement(main_grads, grads)
        print(
            f'  sub {subnet_depths(subnet)}: per-image correlation with the '
            f'teacher {corr[0]:.2f} at {shorter}px, {corr[1]:.2f} at '
            f'{smallest}px; its gradient / CE gradient: norm {ratio:.1f}x, '
            f'cosine {cosine:+.2f}'
        )
    cosine, ratio = gradient_agreement(main_grads, summed)
    print(
        f'  three summed: gradient / CE gradient: norm {ratio:.1f}x, '
        f'cosine {cosine:+.2f}'
    )


def check_backbone(
    p: argparse.ArgumentParser, backbone: str, variant: str
) -> None:
    """Exit with an error naming the variant, its key and the backbones
    it allows when ``backbone`` has not the key ``variant`` sets."""
    if backbone not in ONLY.get(variant, BACKBONES):
        p.error(
            f'variant {variant} sets {list(VARIANTS[variant])[-1]}, '
            f'which --backbone {backbone} has not; allowed backbones: '
            f'{", ".join(ONLY[variant])}'
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument(
        'variants',
        nargs='*',
        help=f'of {", ".join(VARIANTS)} (default: '
        f'{", ".join(DEFAULT_VARIANTS)})',
    )
    p.add_argument(
        '--backbone',
        action='append',
        choices=BACKBONES,
        help='the Fashion-MNIST config family (default: swin); training '
        'takes one; --at-init may repeat it (default there: all four)',
    )
    p.add_argument(
        '--seeds',
        nargs='+',
        type=int,
        default=[0],
        help='randomness seeds, one run each (default: 0)',
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
        'accuracy of the main network and the sub-networks (one seed)',
    )
    p.add_argument(
        '--at-init',
        action='store_true',
        help='only the measurements of one batch at initialisation, for '
        'the ST++ configs with the KL (or the VARIANTS given, which must '
        'have sub-networks)',
    )
    p.add_argument('--work-dir', default='work_dirs/kl_diagnostic')
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.at_init:
        if args.train_images is not None:
            p.error('--at-init measures one batch; it takes no --train-images')
        unknown = set(args.variants) - set(VARIANTS)
        if unknown:
            p.error(
                f'unknown variants {sorted(unknown)}; allowed: '
                f'{list(VARIANTS)}'
            )
        torch.manual_seed(0)
        for backbone in args.backbone or AT_INIT_ORDER:
            if not args.variants:  # the KL config
                at_initialisation(
                    config_of(backbone, 'kl'),
                    KL_AT_INIT[backbone],
                    args.work_dir,
                )
            for variant in args.variants:
                check_backbone(p, backbone, variant)
                at_initialisation(
                    config_of(backbone, variant),
                    overrides_of(variant, args.iters),
                    args.work_dir,
                )
        return
    backbones = args.backbone or ['swin']
    if len(backbones) != 1:
        p.error(f'--backbone {backbones}: training takes one backbone')
    backbone = backbones[0]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        p.error(
            f'unknown variants {sorted(unknown)}; allowed: {list(VARIANTS)}'
        )
    variants = args.variants or DEFAULT_VARIANTS
    for variant in variants:
        check_backbone(p, backbone, variant)
    if args.train_images is None:
        curves = {}
        for variant in variants:
            curves[variant] = {}
            for seed in args.seeds:
                losses = loss_curve(
                    backbone, variant, seed, args.iters, args.work_dir
                )
                curves[variant][seed] = losses
                print(
                    f'{backbone} {variant} seed {seed}:',
                    ' '.join(f'{v:.2f}' for v in losses),
                    flush=True,
                )
        print(
            f'\nmain cross-entropy, {backbone}, mean of each 10 iterations '
            '(chance 2.30):'
        )
        for seed in args.seeds:
            for variant in variants:
                curve = ' '.join(f'{v:.2f}' for v in curves[variant][seed])
                print(f'seed {seed} {variant:16s}', curve)
        print()
        print(summary_table(curves, args.seeds, args.iters))
        return
    if len(args.seeds) != 1:
        p.error('--train-images runs one seed; give --seeds one value')
    run_args = argparse.Namespace(
        epochs=1,
        train_images=args.train_images,
        bn_recal_images=0,  # LayerNorm only
        seed=args.seeds[0],
        data_root=osp.join(HERE, 'data', 'fashion_mnist'),
    )
    if backbone == 'resnet20':
        run_args.bn_recal_images = 2000
    iters = -(-args.train_images // 128)
    metrics = {
        v: train_and_evaluate(
            config_of(backbone, v),
            overrides_of(v, iters),
            osp.join(args.work_dir, backbone, f'{v}_{args.train_images}'),
            run_args,
        )['metrics']
        for v in variants
    }
    print(
        f'\nFashion-MNIST test accuracy (%), {backbone}, 1 epoch on '
        f'{args.train_images} training images:\n'
    )
    print(format_table(metrics, '{:.2f}'))


if __name__ == '__main__':
    main()
