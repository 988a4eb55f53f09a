"""Loafing on Fashion-MNIST over several seeds: CT vs ST vs ST++ (and ST++
with the authors' shared BN statistics and no re-estimation), main network
and sub-networks (each with its own re-estimated BN statistics).

    python benchmarks/loafing.py [--seeds 0 1 2] [--epochs 1]
        [--train-images 60000] [--methods CT ST ST++ ST++shared]

Each (method, seed) is one run of tools/embedded_default.py's training;
prints a mean +- std table (Markdown) and writes all numbers to
``<work-dir>/loafing.json``.
"""

import argparse
import json
import os
import os.path as osp
import statistics
import sys

import torch

HERE = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(HERE, 'tools'))
from embedded_default import METHODS, format_table, run_method  # noqa: E402

# run settings recorded with every result ('?' in older result files)
SETTINGS = ('epochs', 'train_images', 'bn_recal_images')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument(
        '--methods',
        nargs='+',
        choices=sorted(METHODS),
        default=['CT', 'ST', 'ST++', 'ST++shared'],
    )
    p.add_argument('--epochs', type=int, default=1)
    p.add_argument('--train-images', type=int, default=60000)
    p.add_argument('--bn-recal-images', type=int, default=2000)
    p.add_argument('--threads', type=int, default=1)
    p.add_argument(
        '--data-root', default=osp.join(HERE, 'data', 'fashion_mnist')
    )
    p.add_argument(
        '--work-dir', default=osp.join(HERE, 'work_dirs', 'bench_loafing')
    )
    p.add_argument(
        '--summarize',
        nargs='+',
        metavar='JSON',
        help='only print the table of these loafing.json files',
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    results = {}
    out = osp.join(args.work_dir, 'loafing.json')
    if args.summarize:
        for path in args.summarize:
            with open(path) as f:
                for name, runs in json.load(f).items():
                    results.setdefault(name, []).extend(runs)
        args.seeds = sorted({r['seed'] for v in results.values() for r in v})
        args.methods = []
    os.makedirs(args.work_dir, exist_ok=True)
    for seed in args.seeds if not args.summarize else []:
        for name in args.methods:
            run_args = argparse.Namespace(**vars(args))
            run_args.seed = seed
            run_args.work_dir = osp.join(args.work_dir, f'seed{seed}')
            r = run_method(name, run_args)
            results.setdefault(name, []).append(
                dict(
                    seed=seed,
                    seconds=r['seconds'],
                    **{k: getattr(args, k) for k in SETTINGS},
                    **r['metrics'],
                )
            )
            with open(out, 'w') as f:  # keep partial results
                json.dump(results, f, indent=2)
            print(
                f'seed {seed} {name}: ' + json.dumps(r['metrics']), flush=True
            )

    summary = {}
    for name, runs in results.items():
        keys = [k for k in runs[0] if k.endswith('accuracy/top1')]
        summary[name] = {
            k: (
                f'{statistics.mean(r[k] for r in runs):.1f} +- '
                f'{statistics.stdev(r[k] for r in runs):.1f}'
                if len(runs) > 1
                else f'{runs[0][k]:.1f}'
            )
            for k in keys
        }
    runs = [r for v in results.values() for r in v]
    setting = {
        k: sorted({r.get(k, '?') for r in runs}, key=str) for k in SETTINGS
    }
    epochs, images, recal = ('/'.join(map(str, setting[k])) for k in SETTINGS)
    print(
        f'\nFashion-MNIST test top-1 (%), ResNet-20, {epochs} epoch(s) '
        f'on {images} training images, seeds {args.seeds}; '
        f'sub-networks with BN statistics re-estimated on '
        f'{recal} training images (ST++shared: main '
        'network with the shared statistics, not re-estimated):\n'
    )
    print(format_table(summary, '{}'))
    if not args.summarize:
        print(f'\nall runs: {out}')


if __name__ == '__main__':
    main()
