"""Time of a depth menu sweep, by phase: caching the evaluation and BN
re-estimation batches, re-estimation, evaluation, latency (and the rest:
building the runner, hashing the inputs, FLOPs, writing the outputs).

    python benchmarks/depth_menu.py [depth_menu.py arguments]

Takes exactly the arguments of ``tools/analysis_tools/depth_menu.py``
(docs/depth_menu.md) and runs it from scratch (``--force`` is implied, so
pass an ``--out-dir`` of its own); prints the phase times and writes them
to ``OUT_DIR/benchmark.json``. The Fashion-MNIST figure of
docs/benchmarks.md:

    python benchmarks/depth_menu.py \\
        configs/mmpretrain/fashion_mnist/resnet20_ct_fmnist.py \\
        work_dirs/embedded_default/CT/epoch_1.pth \\
        work_dirs/embedded_default/STpp/epoch_1.pth --labels CT ST++ \\
        --batch-sizes 1 128 --threads 2 --out-dir work_dirs/depth_menu/fmnist
"""

import json
import os.path as osp
import sys
import time

import torch

HERE = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, osp.join(HERE, 'tools', 'analysis_tools'))
import depth_menu  # noqa: E402

from mmst.analysis.menu import default_out_dir  # noqa: E402


def main() -> None:
    argv = sys.argv[1:]
    if '--force' not in argv:
        argv = argv + ['--force']
    args = depth_menu.parse_args(argv)
    start = time.perf_counter()
    menu = depth_menu.main(argv)
    wall = time.perf_counter() - start
    timings = dict(menu['runs'][-1]['timings'])
    members = len(menu['members'])
    labels = len(menu['checkpoints'])
    phases = ('cache_s', 'recal_s', 'eval_s', 'latency_s')
    other = wall - sum(timings.get(k, 0.0) for k in phases)
    report = dict(
        command='python benchmarks/depth_menu.py ' + ' '.join(sys.argv[1:]),
        wall_s=round(wall, 1),
        phases_s={k: round(timings.get(k, 0.0), 1) for k in phases},
        other_s=round(other, 1),
        members=members,
        checkpoints=labels,
        eval_images=menu['eval_images'],
        bn_recal_images=menu['settings']['bn_recal_images'],
        batch_sizes=menu['settings']['batch_sizes'],
        eval_cache=menu.get('eval_cache'),
        machine=menu['machine'],
        torch_threads=torch.get_num_threads(),
    )
    out_dir = args.out_dir or default_out_dir(args.config)
    with open(osp.join(out_dir, 'benchmark.json'), 'w') as f:
        json.dump(report, f, indent=2)
    print(
        f'{labels} checkpoint(s) x {members} members, '
        f'{menu["eval_images"]} evaluation images, '
        f'{report["bn_recal_images"]} re-estimation images, latency at '
        f'batch {", ".join(map(str, report["batch_sizes"]))}: '
        f'{wall / 60:.1f} min'
    )
    for key in phases:
        print(f'  {key[:-2]:<8} {timings.get(key, 0.0):7.1f} s')
    print(f'  {"other":<8} {other:7.1f} s')
    n = members * labels
    print(
        f'  per member and checkpoint: re-estimation '
        f'{timings.get("recal_s", 0.0) / n:.2f} s, evaluation '
        f'{timings.get("eval_s", 0.0) / n:.2f} s; latency per member '
        f'{timings.get("latency_s", 0.0) / members:.2f} s'
    )


if __name__ == '__main__':
    main()
