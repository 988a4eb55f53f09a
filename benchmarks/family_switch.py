"""What switching a depth family's member costs
(:meth:`mmst.apis.DepthFamily.set_member`: BN buffers pointed at the
member's statistics, the skipped blocks bypassed), in microseconds, next to
what it replaces (rebuilding the model, :func:`mmst.apis.init_model`) and
one forward pass of the smallest and largest member.

    python benchmarks/family_switch.py FAMILY.pth [--config CONFIG] \\
        [--onnx DIR [--latency-repeats 100] [--rounds 3]]
    python benchmarks/family_switch.py --synthetic CONFIG \\
        [--members smallest full] [--input-shape 3 224 224]
    [--repeats 2000] [--threads 1] [--out FILE.json]

``FAMILY.pth``: a family checkpoint (``depth_menu.py ... --family``);
``--synthetic CONFIG``: the config's model with its initial weights and the
``--members`` of its space, each with its own copy of the BN statistics
(a switch does not depend on their values), so that any architecture is
timed without data or training. Switches alternate between the first and
the last member (each call changes member); timed by name (``'[1,1,1]'``)
and by a spec the parser resolves (``'1,1,1'``), and by latency budget
(:meth:`~mmst.apis.DepthFamily.for_latency`) when the family has
latencies.

``--onnx DIR`` (a family file) also exports every member to ONNX
(:func:`mmst.deploy.export_family_onnx`: ``DIR/member_*.onnx`` and the
one graph ``DIR/family.onnx``) and times, per member at batch 1 on the
first test image: PyTorch (the family switched to it), ONNX Runtime on its
own file and on the one graph (CPU, ``--threads``), one after the other,
``--rounds`` times (the median of the rounds' medians), with the member's
metric from the family. docs/benchmarks.md "Depth family switching" has the
numbers.
"""

import argparse
import json
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch


def _summary(samples_ns: List[int]) -> Dict[str, float]:
    us = sorted(s / 1000 for s in samples_ns)
    q = statistics.quantiles(us, n=10)
    return dict(median_us=statistics.median(us), p10_us=q[0], p90_us=q[-1])


def _time_ns(fn: Callable[[], object], repeats: int) -> List[int]:
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - t0)
    return samples


def synthetic_family(config: str, members: List[str]):
    """A :class:`DepthFamily` of ``config``'s model (initial weights):
    ``members`` of its default space, each with a copy of every BN layer's
    statistics."""
    from mmengine.config import Config
    from torch.nn.modules.batchnorm import _BatchNorm

    from mmst.apis import DepthFamily, init_model
    from mmst.apis.inference import is_st_model
    from mmst.subnet import (
        ElasticDepth,
        SubnetSpace,
        format_subnet,
        resolve_subnets,
    )

    cfg = Config.fromfile(config)
    model = init_model(cfg)
    stages = None
    if is_st_model(cfg.model):
        stages = cfg.model.get('elastic_stages')
    elastic = ElasticDepth(model.backbone, stages)
    space = SubnetSpace(elastic.stage_depths)
    bns = {n: m for n, m in model.named_modules() if isinstance(m, _BatchNorm)}
    rows = [
        dict(
            name=format_subnet(sub),
            subnet=[len(s) for s in sub],
            bn_stats={
                n: (bn.running_mean.clone(), bn.running_var.clone())
                for n, bn in bns.items()
            },
        )
        for sub in resolve_subnets(members, space, '--members')
    ]
    family = dict(
        label='synthetic',
        menu=dict(
            metric=None,
            space=dict(
                stage_depths=space.stage_depths,
                depth_choices=space.depth_choices,
            ),
        ),
        members=rows,
    )
    return DepthFamily(model, family, elastic), cfg


def run(args) -> dict:
    from mmst.apis import init_family, init_model

    torch.set_num_threads(args.threads)
    if args.synthetic:
        family, _ = synthetic_family(args.synthetic, args.members)
        shape = args.input_shape
        source = dict(synthetic=args.synthetic)
    else:
        family = init_family(args.config, args.family)
        shape = args.input_shape or family.menu['input_shape']
        source = dict(family=args.family)
    names = family.members
    first, last = names[0], names[-1]
    specs = [n.strip('[]') for n in (first, last)]  # '1,1,1': parsed
    bns = len(family._buffers[None])
    skipped = sum(
        n - k
        for n, k in zip(
            family.elastic.stage_depths, family.row(first)['subnet']
        )
    )
    result = dict(
        **source,
        model=type(family.model).__name__,
        backbone=family.elastic.backbone_name,
        stage_depths=family.elastic.stage_depths,
        members=[first, last],
        bn_layers_swapped=bns,
        blocks_skipped_by_first=skipped,
        repeats=args.repeats,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
    )
    i = iter(range(10**9))
    result['switch_by_name'] = _summary(
        _time_ns(
            lambda: family.set_member((first, last)[next(i) % 2]),
            args.repeats,
        )
    )
    result['switch_by_spec'] = _summary(
        _time_ns(lambda: family.set_member(specs[next(i) % 2]), args.repeats)
    )
    latencies = [family.row(n).get('latency') or {} for n in (first, last)]
    if all(latencies):
        batch = str(family.menu['latency_batch_size'])
        budgets = [lat[batch]['median_ms'] for lat in latencies]
        result['switch_by_latency_budget'] = _summary(
            _time_ns(
                lambda: family.for_latency(budgets[next(i) % 2]),
                args.repeats,
            )
        )
    # a lower bound of a rebuild: the model from its loaded config, no
    # weights read, no BN re-estimation
    plain = family.model.cfg
    rebuilds = _time_ns(lambda: init_model(plain), args.rebuilds)
    result['rebuild_ms'] = statistics.median(rebuilds) / 1e6
    x = torch.randn(1, *shape)
    forward = getattr(family.model, 'extract_feat', family.model)
    result['forward'] = 'extract_feat' if forward is not family.model else ''
    for name in (first, last):
        family.set_member(name)
        with torch.no_grad():
            samples = _time_ns(lambda: forward(x), args.forwards)
        result[f'forward_ms {name}'] = statistics.median(samples) / 1e6
    if args.onnx:
        result['onnx'] = onnx_members(family, args.onnx, args)
    return result


def onnx_members(family, out_dir: str, args) -> dict:
    """Per member: its metric, PyTorch and ONNX Runtime latency (ms at
    batch 1: the median over ``args.rounds`` rounds of the median of
    ``args.latency_repeats`` runs), from its own file and from the one
    graph, timed one after the other for each member in each round (so
    that a change of the machine's load hits all three); the files'
    sizes."""
    import os

    from mmst.analysis.cost import eager_latency
    from mmst.deploy import eval_inputs, export_family_onnx
    from mmst.deploy import family_onnx_latency as ort_latency

    exported = export_family_onnx(family, out_dir, force=True)
    x = eval_inputs(family.model.cfg, family.model, 1)[0]
    timing = (args.warmup, args.latency_repeats)
    keys = ('pytorch_ms', 'ort_member_file_ms', 'ort_one_graph_ms')
    samples = {n: {k: [] for k in keys} for n in family.members}
    for _ in range(args.rounds):
        for name in family.members:
            family.set_member(name)
            eager = eager_latency(family.model, x, None, *timing)
            one = [name]
            files = ort_latency(exported, x, *timing, args.threads, one)[name]
            found = (eager, files['member_file'], files['one_graph'])
            for key, summary in zip(keys, found):
                samples[name][key].append(summary['median_ms'])
    family.set_member(None)
    rows = []
    for name in family.members:
        results = family.row(name).get('results', {}).get(family.label, {})
        rows.append(
            dict(
                member=name,
                metric=results.get('metric'),
                **{k: statistics.median(v) for k, v in samples[name].items()},
            )
        )
    size = os.path.getsize
    return dict(
        metric=family.metric,
        rows=rows,
        samples=samples,
        member_files_bytes=sum(
            size(f) for f in exported['member_files'].values()
        ),
        one_graph_bytes=size(exported['one_graph']),
        latency_repeats=args.latency_repeats,
        rounds=args.rounds,
        warmup=args.warmup,
    )


def markdown(onnx: dict) -> str:
    """The per-member table of :func:`onnx_members`."""
    lines = [
        f'| member | {onnx["metric"]} | PyTorch ms | ORT member file ms | '
        'ORT one graph ms |',
        '|---|---|---|---|---|',
    ]
    for r in onnx['rows']:
        metric = '' if r['metric'] is None else f'{r["metric"]:.2f}'
        times = [
            r[k]
            for k in ('pytorch_ms', 'ort_member_file_ms', 'ort_one_graph_ms')
        ]
        cells = ' | '.join(f'{t:.3f}' for t in times)
        lines.append(f'| `{r["member"]}` | {metric} | {cells} |')
    return '\n'.join(lines)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('family', nargs='?', help='a family checkpoint')
    p.add_argument('--config', help="its config (default: the menu's)")
    p.add_argument('--synthetic', metavar='CONFIG', help='no family file')
    p.add_argument(
        '--members',
        nargs='+',
        default=['smallest', 'full'],
        help='with --synthetic: members of the space',
    )
    p.add_argument(
        '--input-shape',
        nargs=3,
        type=int,
        help="C H W of the forward (default: the menu's; synthetic: "
        '3 224 224)',
    )
    p.add_argument('--repeats', type=int, default=2000, help='switches')
    p.add_argument('--rebuilds', type=int, default=3, help='rebuilds')
    p.add_argument('--forwards', type=int, default=10, help='forwards')
    p.add_argument('--threads', type=int, default=1)
    p.add_argument(
        '--onnx',
        metavar='DIR',
        help='with a family file: export every member to ONNX in DIR and '
        'time PyTorch and ONNX Runtime per member',
    )
    p.add_argument(
        '--latency-repeats',
        type=int,
        default=100,
        help='with --onnx: timed runs per member, runtime and round',
    )
    p.add_argument(
        '--warmup', type=int, default=20, help='with --onnx: untimed runs'
    )
    p.add_argument(
        '--rounds',
        type=int,
        default=3,
        help='with --onnx: rounds over the members (median of the rounds)',
    )
    p.add_argument('--out', help='also write the result as JSON')
    args = p.parse_args(argv)
    if bool(args.family) == bool(args.synthetic):
        p.error('give a FAMILY.pth or --synthetic CONFIG (one of them)')
    if args.onnx and args.synthetic:
        p.error('--onnx needs a FAMILY.pth (its members and test images)')
    if args.synthetic and args.input_shape is None:
        args.input_shape = [3, 224, 224]
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=1))
    if 'onnx' in result:
        print(markdown(result['onnx']))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
