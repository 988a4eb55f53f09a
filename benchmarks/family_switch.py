"""What switching a depth family's member costs
(:meth:`mmst.apis.DepthFamily.set_member`: BN buffers pointed at the
member's statistics, the skipped blocks bypassed), in microseconds, next to
what it replaces (rebuilding the model, :func:`mmst.apis.init_model`) and
one forward pass of the smallest and largest member.

    python benchmarks/family_switch.py FAMILY.pth [--config CONFIG]
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
latencies. docs/benchmarks.md "Depth family: switching" has the numbers.
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
    return result


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
    p.add_argument('--out', help='also write the result as JSON')
    args = p.parse_args(argv)
    if bool(args.family) == bool(args.synthetic):
        p.error('give a FAMILY.pth or --synthetic CONFIG (one of them)')
    if args.synthetic and args.input_shape is None:
        args.input_shape = [3, 224, 224]
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == '__main__':
    main()
