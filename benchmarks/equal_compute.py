"""What ST++'s extra cost buys at equal compute, on Fashion-MNIST (ResNet-20).

    python benchmarks/equal_compute.py run PLAN... [--seeds 0 1 2]
        [--variant-seeds 0] [--jobs 2]
    python benchmarks/equal_compute.py menu [RUN_PREFIX...] [--jobs 2]
    python benchmarks/equal_compute.py report

Plans (each run trains a shipped config with an iteration-based cosine
schedule, one torch thread, and is skipped when its result exists, so a
stopped ``run`` continues where it stopped):

- ``equal``: per seed, ST++ (``resnet20_stpp_fmnist.py``) for ``--epochs``
  epochs; CT (``resnet20_ct_fmnist.py``) for as many CT-epoch equivalents
  as that ST++ run used (its ``cost.json``, ``mmst.engine.STCostHook``),
  and CT for ``--epochs`` epochs.
- ``finetune``: CT for ``--epochs`` epochs, seed 0 (the main job's CT
  checkpoint), then ST++ fine-tuned from it
  (``resnet20_stpp_ft_fmnist.py``) for budgets of 0.1 .. 1 CT-epoch
  equivalents, per seed; per ``--variant-seeds``: at the middle budget
  other learning rates and no warm-up, and CT fine-tuned from it for the
  same budgets.
- ``knobs``: per ``--variant-seeds``, ST++ with fewer sub-networks per
  step (N = 1, 2; the config's is 3) and with smaller sub-network inputs,
  for ``--epochs`` epochs.

``menu`` measures every member of the space (BN statistics re-estimated on
2000 training images each, all 10000 test images, FLOPs) of the finished
runs whose names start with a RUN_PREFIX (default ``cteq_`` and
``stpp_s``: CT at ST++'s compute and ST++) (``mmst.analysis.run_loafing`` with
``subnets=('all',)``, the depth menu's numbers without latency);
``report`` prints the Markdown tables of docs/benchmarks.md ("What ST++'s
extra cost buys"). Everything goes to ``--work-dir``
(default ``work_dirs/equal_compute``): ``runs/<name>.json`` per run,
``menu.json``.
"""

import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

HERE = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = osp.join(HERE, 'configs', 'mmpretrain', 'fashion_mnist')
CT = osp.join(CONFIGS, 'resnet20_ct_fmnist.py')
STPP = osp.join(CONFIGS, 'resnet20_stpp_fmnist.py')
STPP_FT = osp.join(CONFIGS, 'resnet20_stpp_ft_fmnist.py')
IMAGES = 60000
BATCH = 128
#: fine-tuning budgets, CT-epoch equivalents
BUDGETS = (0.1, 0.25, 0.5, 1.0)
#: ST++'s FLOPs ratio (cost.json of the ``equal`` seed-0 run) used to turn
#: a fine-tuning budget into iterations; each run reports what it used
FT_RATIO = 2.15
#: the learning rate of the curve, then the others tried at the middle
#: budget (with no warm-up too)
FT_LRS = (0.02, 0.005, 0.01, 0.05)
#: the shipped fine-tuning config's learning rate (the best of FT_LRS),
#: run on every seed at the middle budget
FT_CONFIG_LR = 0.05
KNOBS = {
    'N1': {'model.num_subnets': 1},
    'N2': {'model.num_subnets': 2},
    'small': {'model.input_resize': dict(ratio_range=(0.43, 0.7))},
}


def iters_per_epoch(images: int = IMAGES) -> int:
    return -(-images // BATCH)


# -- one training run (in its own process) --------------------------------
def train(spec: dict) -> dict:
    """Train ``spec`` (config, overrides, iters, warmup, lr, seed,
    load_from, work_dir) and return its metrics, cost and time."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmst.apis import prepare_config
    from mmst.engine import STCostHook

    torch.set_num_threads(1)
    cfg = Config.fromfile(spec['config'])
    cfg.merge_from_dict(spec.get('overrides', {}))
    iters, warmup = spec['iters'], spec.get('warmup', 0)
    cfg.work_dir = spec['work_dir']
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=iters, val_interval=iters
    )
    schedule = [dict(type='CosineAnnealingLR', by_epoch=False, T_max=iters)]
    if warmup:  # the fine-tuning config's warm-up and decay, other ends
        schedule = Config.fromfile(STPP_FT).param_scheduler
        schedule[0].end = schedule[1].begin = warmup
        schedule[1].end, schedule[1].T_max = iters, iters - warmup
    cfg.param_scheduler = schedule
    if spec.get('lr'):
        cfg.optim_wrapper.optimizer.lr = spec['lr']
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.data_root = osp.join(HERE, 'data', 'fashion_mnist')
    cfg.randomness = dict(seed=spec['seed'])
    cfg.load_from = spec.get('load_from')
    cfg.resume = False
    cfg.log_processor = dict(by_epoch=False)
    cfg.default_hooks.logger.interval = 50
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=-1, save_last=True
    )
    cfg.log_level = 'WARNING'
    prepare_config(cfg)
    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    metrics = {
        key[len('val/') :]: float(buffer.current())
        for key, buffer in runner.message_hub.log_scalars.items()
        if key.startswith('val/') and not key.startswith('val/cost/')
    }
    cost = STCostHook.summary(runner) or dict(
        flops_ratio=1.0, ct_epochs=iters / iters_per_epoch(), iters=iters
    )
    return dict(
        spec,
        metrics=metrics,
        cost=cost,
        seconds=time.time() - start,
        checkpoint=osp.join(spec['work_dir'], f'iter_{iters}.pth'),
    )


# -- plans -------------------------------------------------------------------
def _spec(work, name, config, iters, seed, **kw) -> dict:
    return dict(
        name=name,
        config=config,
        iters=iters,
        seed=seed,
        work_dir=osp.join(work, 'train', name),
        **kw,
    )


def _result(work, name):
    path = osp.join(work, 'runs', name + '.json')
    if osp.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


def plan(args) -> list:
    """(spec, names it waits for) of every run of ``args.plans``; a spec
    may be a function of the finished results it waits for."""
    work, ipe = args.work_dir, iters_per_epoch()
    full = args.epochs * ipe
    jobs = []
    for seed in args.seeds if 'equal' in args.plans else []:
        st = f'stpp_s{seed}'
        jobs.append((_spec(work, st, STPP, full, seed), []))
        jobs.append((_spec(work, f'ct_s{seed}', CT, full, seed), []))

        def ct_equal(done, st=st, seed=seed):
            used = done[st]['cost']['ct_epochs']
            iters = round(used * ipe)
            return _spec(work, f'cteq_s{seed}', CT, iters, seed)

        jobs.append((ct_equal, [st]))
    if 'finetune' in args.plans:
        base = 'ct_s0'
        if not any(
            s.get('name') == base for s, _ in jobs if isinstance(s, dict)
        ):
            jobs.append((_spec(work, base, CT, full, 0), []))

        def ft(name, config, budget, seed, ratio, **kw):
            iters = max(1, round(budget * ipe / ratio))

            def make(done):
                return _spec(
                    work,
                    name,
                    config,
                    iters,
                    seed,
                    load_from=done[base]['checkpoint'],
                    budget=budget,
                    lr=kw.get('lr', 0.02),
                    warmup=kw.get('warmup', 0),
                )

            return (make, [base])

        mid = BUDGETS[len(BUDGETS) // 2]

        def warmup(budget):
            return min(20, round(budget * ipe / FT_RATIO) // 5)

        curve = [
            ft(
                f'ft_b{budget}_s{seed}',
                STPP_FT,
                budget,
                seed,
                FT_RATIO,
                warmup=warmup(budget),
            )
            for seed in args.seeds
            for budget in BUDGETS
        ]
        # the first seed's curve, the variants, then the other seeds
        jobs += curve[: len(BUDGETS)]
        for seed in args.variant_seeds:
            for budget in BUDGETS:
                jobs.append(
                    ft(
                        f'ctft_b{budget}_s{seed}',
                        CT,
                        budget,
                        seed,
                        1.0,
                        lr=0.02,
                        warmup=warmup(budget),
                    )
                )
            for lr in FT_LRS[1:]:
                jobs.append(
                    ft(
                        f'ft_b{mid}_lr{lr}_s{seed}',
                        STPP_FT,
                        mid,
                        seed,
                        FT_RATIO,
                        lr=lr,
                        warmup=warmup(mid),
                    )
                )
            jobs.append(
                ft(
                    f'ft_b{mid}_nowarm_s{seed}',
                    STPP_FT,
                    mid,
                    seed,
                    FT_RATIO,
                    warmup=0,
                )
            )
        jobs += curve[len(BUDGETS) :]
        jobs += [
            ft(
                f'ft_b{mid}_lr{FT_CONFIG_LR}_s{seed}',
                STPP_FT,
                mid,
                seed,
                FT_RATIO,
                lr=FT_CONFIG_LR,
                warmup=warmup(mid),
            )
            for seed in args.seeds
            if seed not in args.variant_seeds
        ]
    for seed in args.variant_seeds if 'knobs' in args.plans else []:
        for knob, overrides in KNOBS.items():
            jobs.append(
                (
                    _spec(
                        work,
                        f'stpp_{knob}_s{seed}',
                        STPP,
                        full,
                        seed,
                        overrides=overrides,
                    ),
                    [],
                )
            )
    return jobs


def run(args) -> None:
    """Run the plans' jobs, ``--jobs`` at a time, each in a process."""
    os.makedirs(osp.join(args.work_dir, 'runs'), exist_ok=True)
    pending = plan(args)
    running = {}  # name -> Popen, or None: started by an earlier `run`
    while pending or running:
        for name, proc in list(running.items()):
            if proc is None:  # another `run` process started it
                if _result(args.work_dir, name):
                    del running[name]
                continue
            if proc.poll() is None:
                continue
            del running[name]
            if proc.returncode:
                raise SystemExit(f'run {name} failed (exit {proc.returncode})')
        for job in list(pending):
            spec, needs = job
            ready = all(_result(args.work_dir, n) for n in needs)
            if not ready or len(running) >= args.jobs:
                continue
            if callable(spec):
                spec = spec({n: _result(args.work_dir, n) for n in needs})
            pending.remove(job)
            if _result(args.work_dir, spec['name']):
                continue
            spec_path = osp.join(spec['work_dir'], 'spec.json')
            if osp.exists(spec_path):
                # started by an earlier `run` that was stopped: wait for its
                # result (delete the folder of a run that died to redo it)
                running[spec['name']] = None
                continue
            os.makedirs(spec['work_dir'], exist_ok=True)
            with open(spec_path, 'w') as f:
                json.dump(spec, f)
            print(
                f'start {spec["name"]} ({spec["iters"]} iterations)',
                flush=True,
            )
            log = open(osp.join(spec['work_dir'], 'train.log'), 'w')
            proc = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    'train-one',
                    spec_path,
                    '--work-dir',
                    args.work_dir,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, OMP_NUM_THREADS='1'),
            )
            running[spec['name']] = proc
        time.sleep(2)


def train_one(args) -> None:
    with open(args.spec) as f:
        spec = json.load(f)
    result = train(spec)
    out = osp.join(args.work_dir, 'runs', spec['name'] + '.json')
    with open(out + '.tmp', 'w') as f:
        json.dump(result, f, indent=1)
    os.replace(out + '.tmp', out)
    print(f'done {spec["name"]}: {result["metrics"]} {result["cost"]}')


# -- every member of the space ------------------------------------------------
def menu(args) -> None:
    """Every member of the space of the ``equal`` / ``knobs`` checkpoints,
    ``--jobs`` processes each measuring a share of them."""
    runs = sorted(
        n[:-5]
        for n in os.listdir(osp.join(args.work_dir, 'runs'))
        if n.endswith('.json') and n.startswith(tuple(args.rest))
    )
    out = osp.join(args.work_dir, 'menu')
    os.makedirs(out, exist_ok=True)
    todo = [n for n in runs if not osp.exists(osp.join(out, n + '.json'))]
    shares = [todo[i :: args.jobs] for i in range(args.jobs)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                'menu-share',
                *share,
                '--work-dir',
                args.work_dir,
            ],
            env=dict(os.environ, OMP_NUM_THREADS='1'),
        )
        for share in shares
        if share
    ]
    if any(p.wait() for p in procs):
        raise SystemExit('a menu process failed')


def menu_share(args) -> None:
    import torch

    from mmst.analysis import run_loafing

    torch.set_num_threads(1)
    for name in args.names:
        run = _result(args.work_dir, name)
        result = run_loafing(
            CT,
            [run['checkpoint']],
            labels=[name],
            subnets=('all',),
            bn_recal_images=2000,
        )
        rows = {
            r['name']: dict(
                subnet=r['subnet'], flops=r['flops'], top1=r['results'][name]
            )
            for r in result['networks']
        }
        path = osp.join(args.work_dir, 'menu', name + '.json')
        with open(path + '.tmp', 'w') as f:
            json.dump(rows, f, indent=1)
        os.replace(path + '.tmp', path)
        print(f'menu {name} done', flush=True)


# -- tables -----------------------------------------------------------------
def _ms(values, fmt='{:.1f}') -> str:
    if not values:
        return '-'
    if len(values) == 1:
        return fmt.format(values[0])
    return f'{fmt.format(statistics.mean(values))} +- ' + fmt.format(
        statistics.stdev(values)
    )


def _group(work, prefix, seeds):
    return [r for r in (_result(work, f'{prefix}_s{s}') for s in seeds) if r]


def _row(label, runs) -> str:
    m = lambda k: [r['metrics'].get(k) for r in runs if k in r['metrics']]  # noqa: E731
    cost = [r['cost']['ct_epochs'] for r in runs]
    ratio = [r['cost']['flops_ratio'] for r in runs]
    return (
        f'| {label} | {len(runs)} | {_ms(ratio, "{:.2f}")} | '
        f'{_ms(cost, "{:.2f}")} | {_ms(m("accuracy/top1"))} | '
        f'{_ms(m("subnet[1,1,1]/accuracy/top1"))} | '
        f'{_ms(m("subnet[2,2,2]/accuracy/top1"))} |'
    )


HEADER = (
    '| run | seeds | FLOPs ratio | CT-epochs | main top-1 | '
    'subnet[1,1,1] | subnet[2,2,2] |\n|---|---|---|---|---|---|---|'
)


def _menus(work, prefix, seeds):
    out = []
    for s in seeds:
        path = osp.join(work, 'menu', f'{prefix}_s{s}.json')
        if osp.exists(path):
            with open(path) as f:
                out.append(json.load(f))
    return out


def _member_table(menus: dict) -> None:
    """Every member, sorted by FLOPs: mean +- std top-1 per run kind, its
    Pareto frontier (of the means, accuracy against FLOPs) marked *."""
    from mmst.analysis.menu import pareto_front

    first = next(iter(menus.values()))[0]
    names = sorted(first, key=lambda n: (first[n]['flops'], n))
    flops = [first[n]['flops'] for n in names]
    columns = []
    for runs in menus.values():
        tops = [[m[n]['top1'] for m in runs] for n in names]
        front = pareto_front(list(zip(flops, map(statistics.mean, tops))))
        columns.append(
            [_ms(t) + (' *' if f else '') for t, f in zip(tops, front)]
        )
    print(
        '\nEvery member: test top-1 (%), mean +- std over seeds, * on the '
        "run kind's frontier (no member with fewer FLOPs is as accurate); "
        'MFLOPs per image:\n'
    )
    print('| member | MFLOPs | ' + ' | '.join(menus) + ' |')
    print('|---|---|' + '---|' * len(menus))
    for i, name in enumerate(names):
        cells = ' | '.join(c[i] for c in columns)
        print(f'| {name} | {flops[i] / 1e6:.1f} | {cells} |')


def report(args) -> None:
    work, seeds = args.work_dir, args.seeds
    if not _group(work, 'stpp', seeds):
        raise SystemExit(
            f'no ST++ results in {work}/runs: run `python '
            'benchmarks/equal_compute.py run equal` first (or give '
            '--work-dir)'
        )
    print('Equal compute (every run from scratch):\n')
    print(HEADER)
    for label, prefix in (
        ('CT, same iterations', 'ct'),
        ('CT, same compute as ST++', 'cteq'),
        ('ST++', 'stpp'),
    ):
        print(_row(label, _group(work, prefix, seeds)))
    for knob in KNOBS:
        runs = _group(work, f'stpp_{knob}', seeds)
        if runs:
            print(_row(f'ST++ {knob}', runs))
    menus = {
        p: _menus(work, p, seeds)
        for p in ['ct', 'cteq', 'stpp'] + [f'stpp_{k}' for k in KNOBS]
    }
    menus = {p: m for p, m in menus.items() if m}
    if menus:
        _member_table(menus)
    ft_budgets = [b for b in BUDGETS if _group(work, f'ft_b{b}', seeds)]
    if ft_budgets:
        print('\nFrom the CT checkpoint (seed 0), fine-tuned:\n')
        print(HEADER)
        print(_row('start: CT checkpoint', _group(work, 'ct', [0])))
        for b in ft_budgets:
            print(
                _row(
                    f'ST++ ft, budget {b}, lr 0.02',
                    _group(work, f'ft_b{b}', seeds),
                )
            )
            print(
                _row(
                    f'CT ft, budget {b}, lr 0.02',
                    _group(work, f'ctft_b{b}', seeds),
                )
            )
        mid = BUDGETS[len(BUDGETS) // 2]
        for lr in FT_LRS[1:]:
            runs = _group(work, f'ft_b{mid}_lr{lr}', seeds)
            if runs:
                print(_row(f'ST++ ft, budget {mid}, lr {lr}', runs))
        runs = _group(work, f'ft_b{mid}_nowarm', seeds)
        if runs:
            print(_row(f'ST++ ft, budget {mid}, lr 0.02, no warm-up', runs))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument(
        'command',
        choices=['run', 'menu', 'report', 'train-one', 'menu-share'],
        help='run, menu, report (train-one and menu-share: what run and '
        'menu start in their processes)',
    )
    p.add_argument(
        'rest',
        nargs='*',
        help='run: plans (equal finetune knobs); menu: run name '
        'prefixes; train-one: a spec file; menu-share: run names',
    )
    p.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        default=[0, 1, 2],
        help='seeds of ST++, CT and the fine-tuning curve (default: 0 1 2)',
    )
    p.add_argument(
        '--variant-seeds',
        type=int,
        nargs='+',
        default=[0],
        help='seeds of the knobs, the CT fine-tuning and the fine-tuning '
        'variants (default: 0)',
    )
    p.add_argument(
        '--epochs',
        type=int,
        default=1,
        help='epochs of ST++ (and of CT at the same iterations; default 1)',
    )
    p.add_argument(
        '--jobs',
        type=int,
        default=2,
        help='runs at a time, one torch thread each (default 2)',
    )
    p.add_argument(
        '--work-dir',
        default=osp.join(HERE, 'work_dirs', 'equal_compute'),
        help='results, checkpoints and logs (default: '
        'work_dirs/equal_compute in the repository)',
    )
    args = p.parse_args()
    if args.command == 'menu':
        args.rest = args.rest or ['cteq_', 'stpp_s']
    if args.command == 'run':
        args.plans = args.rest or ['equal']
        bad = set(args.plans) - {'equal', 'finetune', 'knobs'}
        if bad:
            p.error(
                f'unknown plan(s) {sorted(bad)}; allowed: equal finetune knobs'
            )
        run(args)
    elif args.command == 'train-one':
        args.spec = args.rest[0]
        train_one(args)
    elif args.command == 'menu':
        menu(args)
    elif args.command == 'menu-share':
        args.names = args.rest
        menu_share(args)
    else:
        report(args)


if __name__ == '__main__':
    main()
