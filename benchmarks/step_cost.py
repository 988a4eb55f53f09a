"""Cost of an ST++ step relative to a conventional (CT) step, in one process.

ResNet-50 (mmpretrain, 1000 classes) at 224 px on CPU: CT (the plain
classifier through the same ST step with N=0) vs ST++ A1 (N=6, space3,
LayerNorm KL, random smaller inputs 0.43..1). The two are interleaved, so
machine noise hits both alike; the script reports medians and ratios:

- step_time_ratio: median ST++ step time / median CT step time;
- predicted_ratio: the FLOPs (forward + backward, counted by
  ``torch.utils.flop_counter``) of the passes each measured step actually
  ran, ST++ / CT: the ratio an implementation without overhead would get;
- peak_mem_ratio: peak resident memory growth during a step (activations
  and gradients: ``VmHWM`` reset before each step through
  ``/proc/self/clear_refs``), ST++ / CT. Large buffers are returned to the
  OS on free (``MALLOC_MMAP_THRESHOLD_``, set by re-executing itself), so
  each step's peak is its own.

On a GPU (``--device cuda``) times are taken between
``torch.cuda.synchronize()`` calls and the peak is the growth of
``torch.cuda.max_memory_allocated()`` over the allocation before the step;
``--amp`` steps through MMEngine's ``AmpOptimWrapper`` (float16, dynamic
loss scale), which needs a GPU.

    python benchmarks/step_cost.py [--steps 5] [--batch 8] [--threads 2]
        [--device cpu|cuda] [--amp]

The last line is ``step_time_ratio=X predicted_ratio=Y peak_mem_ratio=Z``.
"""

import argparse
import os
import os.path as osp
import statistics
import sys
import time

HERE = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _reexec_with_malloc_settings() -> None:
    if os.environ.get('MALLOC_MMAP_THRESHOLD_') is None:
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_='131072')
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def _rss_kb(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def _reset_peak() -> None:
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')


def main() -> None:
    _reexec_with_malloc_settings()
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument(
        '--amp', action='store_true', help='AmpOptimWrapper (GPU only)'
    )
    args = parser.parse_args()
    if args.amp and args.device != 'cuda':
        parser.error('--amp needs --device cuda (AmpOptimWrapper needs a GPU)')

    import torch
    from mmengine.config import Config
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    from mmengine.registry import init_default_scope
    from mmpretrain.structures import DataSample
    from torch.utils.flop_counter import FlopCounterMode

    import mmst  # noqa: F401
    from mmst.registry import MODELS

    torch.set_num_threads(args.threads)
    init_default_scope('mmpretrain')
    stpp_cfg = Config.fromfile(
        osp.join(HERE, 'configs/mmpretrain/imagenet/resnet50_stpp-a1_in1k.py')
    )
    model_cfg = stpp_cfg.model
    model_cfg.architecture.setdefault(
        'data_preprocessor', stpp_cfg.data_preprocessor
    )
    model_cfg.seed = 0
    models = {
        'CT': MODELS.build(dict(model_cfg, num_subnets=0)),
        'ST++': MODELS.build(model_cfg),
    }
    cuda = args.device == 'cuda'
    if cuda:
        models = {k: m.cuda() for k, m in models.items()}
    wrapper = AmpOptimWrapper if args.amp else OptimWrapper
    optims = {
        k: wrapper(optimizer=torch.optim.SGD(m.parameters(), lr=1e-4))
        for k, m in models.items()
    }

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    def memory_now() -> int:
        """Bytes: process resident set (CPU) or allocated (GPU)."""
        if cuda:
            return torch.cuda.memory_allocated()
        return _rss_kb('VmRSS') * 1024

    def reset_peak() -> None:
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            _reset_peak()

    def peak() -> int:
        if cuda:
            return torch.cuda.max_memory_allocated()
        return _rss_kb('VmHWM') * 1024

    g = torch.Generator().manual_seed(0)
    data = dict(
        inputs=[
            torch.randint(
                0,
                255,
                (3, args.size, args.size),
                generator=g,
                dtype=torch.uint8,
            )
            for _ in range(args.batch)
        ],
        data_samples=[
            DataSample().set_gt_label(int(i))
            for i in torch.randint(0, 1000, (args.batch,), generator=g)
        ],
    )

    def step(name: str, it: int) -> None:
        models[name]._local_iter = it  # same sampled passes when repeated
        models[name].train_step(data, optims[name])

    for m in models.values():
        m.train()
    for name in models:  # warm-up: allocator, optimizer state, kernels
        step(name, 0)

    times = {k: [] for k in models}
    flops = {k: [] for k in models}
    peaks = {k: [] for k in models}
    for it in range(1, args.steps + 1):
        for name in models:
            with FlopCounterMode(display=False) as counter:
                step(name, it)
            flops[name].append(counter.get_total_flops())
            for p in models[name].parameters():
                p.grad = None
            sync()
            before = memory_now()
            reset_peak()
            start = time.perf_counter()
            step(name, it)  # the same passes as counted above
            sync()
            times[name].append(time.perf_counter() - start)
            peaks[name].append(peak() - before)
            print(
                f'step {it} {name:5s} {times[name][-1]:7.3f} s '
                f'{flops[name][-1] / 1e9:8.1f} GFLOP '
                f'peak +{peaks[name][-1] / 2**20:7.1f} MiB',
                flush=True,
            )

    step_ratio = statistics.median(times['ST++']) / statistics.median(
        times['CT']
    )
    predicted = sum(flops['ST++']) / sum(flops['CT'])
    mem_ratio = max(peaks['ST++']) / max(peaks['CT'])
    print(
        f'ResNet-50 {args.size}px batch {args.batch}, {args.steps} '
        f'interleaved steps, {args.device}'
        f'{" AMP" if args.amp else ""}, {args.threads} threads; median CT '
        f'{statistics.median(times["CT"]):.3f} s, ST++ '
        f'{statistics.median(times["ST++"]):.3f} s'
    )
    print(
        f'step_time_ratio={step_ratio:.3f} predicted_ratio={predicted:.3f} '
        f'peak_mem_ratio={mem_ratio:.3f}'
    )


if __name__ == '__main__':
    main()
