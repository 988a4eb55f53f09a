"""The Pareto frontier of a menu and the choice of one member under a
budget: pure functions of the menu dict (no torch)."""

import math
from typing import List, Optional, Sequence, Tuple

#: Costs the frontier and the budget are taken over.
COSTS = ('latency', 'flops')
#: Runtimes whose latency the frontier and the budget may use.
RUNTIMES = ('eager', 'onnxruntime')


class BudgetError(ValueError):
    """No member satisfies the budget."""


def check_runtime(runtime: str) -> None:
    """Raise a ValueError unless ``runtime`` is one of :data:`RUNTIMES`."""
    if runtime not in RUNTIMES:
        allowed = ' | '.join(RUNTIMES)
        raise ValueError(
            f'--latency-runtime {runtime!r} is invalid; allowed: {allowed}'
        )


def pareto_front(points: Sequence[Tuple[float, float]]) -> List[bool]:
    """Per (cost, metric) point: on the Pareto frontier (no other point
    has a cost <= and a metric >= with one strictly better)."""
    return [
        not any(
            c <= cost and m >= metric and (c < cost or m > metric)
            for j, (c, m) in enumerate(points)
            if j != i
        )
        for i, (cost, metric) in enumerate(points)
    ]


def member_cost(
    member: dict,
    cost: str,
    batch_size: Optional[int] = None,
    runtime: str = 'eager',
) -> Optional[float]:
    """A member's ``'flops'`` (of one image) or ``'latency'`` (median ms
    at ``batch_size`` of the ``runtime``); None when not measured.

    Raises:
        ValueError: ``cost`` or ``runtime`` is not allowed.
    """
    check_runtime(runtime)
    if cost == 'flops':
        return member.get('flops')
    if cost == 'latency':
        key = 'latency' if runtime == 'eager' else 'onnxruntime_latency'
        entry = (member.get(key) or {}).get(str(batch_size))
        return None if entry is None else entry['median_ms']
    allowed = ' | '.join(COSTS)
    raise ValueError(f'cost={cost!r} is invalid; allowed: {allowed}')


def member_metric(member: dict, label: str) -> Optional[float]:
    """``member``'s metric for checkpoint ``label`` (None: not yet)."""
    result = member.get('results', {}).get(label)
    return None if result is None else result['metric']


def frontier(
    menu: dict, label: str, cost: str, batch_size: Optional[int] = None
) -> List[str]:
    """Names of the members of checkpoint ``label`` on the Pareto frontier
    of the metric vs ``cost`` (:func:`pareto_front`), cheapest first;
    members without either are left out."""
    rt = menu.get('latency_runtime', 'eager')
    rows = [
        (m['name'], member_cost(m, cost, batch_size, rt))
        + (member_metric(m, label),)
        for m in menu['members']
    ]
    rows = [r for r in rows if None not in r]
    flags = pareto_front([(c, v) for _, c, v in rows])
    on = [r for r, f in zip(rows, flags) if f]
    return [name for name, _, _ in sorted(on, key=lambda r: (r[1], -r[2]))]


def _check_choice(
    menu: dict, label: Optional[str], batch_size: Optional[int], bounds
) -> Tuple[str, int]:
    """The label and batch size of a choice (defaults filled in), the
    bounds checked."""
    labels = [c['label'] for c in menu['checkpoints']]
    label = labels[-1] if label is None else label
    if label not in labels:
        allowed = ' | '.join(labels)
        raise ValueError(f'--select {label!r} is invalid; allowed: {allowed}')
    sizes = menu['settings']['batch_sizes']
    if batch_size is None:
        batch_size = menu['latency_batch_size']
    if batch_size not in sizes:
        raise ValueError(
            f'latency batch size {batch_size!r} was not measured; allowed: '
            + ' | '.join(map(str, sizes))
        )
    for key, bound in bounds.items():
        number = isinstance(bound, (int, float)) and math.isfinite(bound)
        if bound is not None and not number:
            raise ValueError(
                f'{key}={bound!r} is invalid; allowed: a finite number'
            )
    return label, batch_size


def choose_member(
    menu: dict,
    label: Optional[str] = None,
    max_latency_ms: Optional[float] = None,
    max_flops: Optional[float] = None,
    min_metric: Optional[float] = None,
    batch_size: Optional[int] = None,
) -> dict:
    """The member (row of ``menu['members']``) of checkpoint ``label``
    (default: the last) with the highest metric among those with latency
    median at ``batch_size`` (default: the menu's) <= ``max_latency_ms``,
    FLOPs (of one image) <= ``max_flops`` and metric (the evaluator's unit)
    >= ``min_metric``, where given; ties go to the lower latency, FLOPs,
    parameters, then the menu's order.

    Raises:
        ValueError: ``label`` or ``batch_size`` is not in the menu, or a
            bound is not a finite number.
        BudgetError: No member fits (the nearest one to each bound named).
    """
    names = '--max-latency-ms', '--max-flops', '--min-metric'
    bounds = max_latency_ms, max_flops, min_metric
    label, batch_size = _check_choice(
        menu, label, batch_size, dict(zip(names, bounds))
    )
    rt = menu.get('latency_runtime', 'eager')

    def numbers(m: dict) -> Tuple[float, float, float]:
        # latency, FLOPs (inf: not measured), -metric: lower is better
        cost, flops = member_cost(m, 'latency', batch_size, rt), m.get('flops')
        inf = math.inf
        return (
            inf if cost is None else cost,
            inf if flops is None else flops,
            -member_metric(m, label),
        )

    rows = [
        (numbers(m), m)
        for m in menu['members']
        if member_metric(m, label) is not None
    ]
    if not rows:
        raise ValueError(f'the menu has no evaluated member of {label!r}')
    signed = (max_latency_ms, max_flops, min_metric and -min_metric)
    fitting = [
        (n[2], n[0], n[1], m['params'], i)
        for i, (n, m) in enumerate(rows)
        if all(b is None or x <= b for x, b in zip(n, signed))
    ]
    if not fitting:
        raise _no_fit(menu, rows, label, batch_size, bounds)
    return rows[min(fitting)[-1]][1]


def _no_fit(menu, rows, label, batch_size, bounds) -> BudgetError:
    """The error of an impossible budget: the bounds, the nearest member
    to each."""
    rt, metric = menu.get('latency_runtime', 'eager'), menu['metric']
    at = f' ms at batch {batch_size}'
    kinds = (  # the bound's text, the nearest member, its tie-breaker
        ('latency <= ', at, 'the fastest member', 2),
        ('FLOPs <= ', '', 'the member with the fewest FLOPs', 2),
        (f'{metric} >= ', '', f'the member with the highest {metric}', 0),
    )
    found, nearest = [], []
    for k, (bound, (pre, post, what, tie)) in enumerate(zip(bounds, kinds)):
        if bound is None:
            continue
        found.append(f'{pre}{bound:g}{post}')
        n, best = min(rows, key=lambda r: (r[0][k], r[0][tie]))
        flops = best.get('flops')
        nearest.append(
            f'{what} is {best["name"]} ({metric} {-n[2]:.4g}, '
            f'{"" if rt == "eager" else "ONNX Runtime "}latency '
            f'{"-" if n[0] == math.inf else f"{n[0]:.4g}"}{at}, '
            f'{"-" if flops is None else f"{flops / 1e6:.4g}"} MFLOPs, '
            f'{best["params"] / 1e6:.4g} M params)'
        )
    return BudgetError(
        f'no member of {label!r} satisfies {" and ".join(found)}; '
        + '; '.join(nearest)
    )
