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
        raise ValueError(
            f'--latency-runtime {runtime!r} is invalid; allowed: '
            + ' | '.join(RUNTIMES)
        )


def pareto_front(points: Sequence[Tuple[float, float]]) -> List[bool]:
    """One flag per (cost, metric) pair of ``points``: on the Pareto
    frontier, i.e. no other point has a cost at most its cost and a metric
    at least its metric with one of the two strictly better (lower cost,
    higher metric). Identical points do not dominate each other."""
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
    """The ``cost`` of a menu member: ``'flops'`` (FLOPs of one image) or
    ``'latency'`` (median ms at ``batch_size`` of the ``runtime``:
    ``'eager'`` PyTorch or ``'onnxruntime'``); None when not measured.

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
    raise ValueError(
        f'cost={cost!r} is invalid; allowed: ' + ' | '.join(COSTS)
    )


def member_metric(member: dict, label: str) -> Optional[float]:
    """The menu metric of ``member`` for checkpoint ``label`` (None when
    not evaluated yet)."""
    result = member.get('results', {}).get(label)
    return None if result is None else result['metric']


def frontier(
    menu: dict, label: str, cost: str, batch_size: Optional[int] = None
) -> List[str]:
    """Names of the members of checkpoint ``label`` on the Pareto frontier
    of the menu metric vs ``cost`` (see :func:`pareto_front`), cheapest
    first; members without the metric or the cost are left out."""
    rt = menu.get('latency_runtime', 'eager')
    rows = [
        (
            m['name'],
            member_cost(m, cost, batch_size, rt),
            member_metric(m, label),
        )
        for m in menu['members']
    ]
    rows = [r for r in rows if r[1] is not None and r[2] is not None]
    flags = pareto_front([(c, v) for _, c, v in rows])
    on = [r for r, f in zip(rows, flags) if f]
    return [name for name, _, _ in sorted(on, key=lambda r: (r[1], -r[2]))]


def _inf(value: Optional[float]) -> float:
    return math.inf if value is None else value


def _lat(m: dict, batch_size: int, rt: str) -> float:
    return _inf(member_cost(m, 'latency', batch_size, rt))


def _describe(
    member: dict, label: str, batch_size: int, metric: str, rt: str
) -> str:
    lat = member_cost(member, 'latency', batch_size, rt)
    flops = member.get('flops')
    return (
        f'{member["name"]} ({metric} {member_metric(member, label):.4g}, '
        f'{"" if rt == "eager" else "ONNX Runtime "}latency '
        f'{"-" if lat is None else f"{lat:.4g}"} ms at batch '
        f'{batch_size}, '
        f'{"-" if flops is None else f"{flops / 1e6:.4g}"} MFLOPs, '
        f'{member["params"] / 1e6:.4g} M params)'
    )


def _check_choice(
    menu: dict, label: Optional[str], batch_size: Optional[int], bounds
) -> Tuple[str, int]:
    """The label and latency batch size of a choice (defaults filled in),
    the bounds checked."""
    labels = [c['label'] for c in menu['checkpoints']]
    label = labels[-1] if label is None else label
    if label not in labels:
        raise ValueError(
            f'--select {label!r} is invalid; allowed: ' + ' | '.join(labels)
        )
    sizes = menu['settings']['batch_sizes']
    if batch_size is None:
        batch_size = menu['latency_batch_size']
    if batch_size not in sizes:
        raise ValueError(
            f'latency batch size {batch_size!r} was not measured; allowed: '
            + ' | '.join(map(str, sizes))
        )
    for key, bound in bounds.items():
        if bound is not None and not (
            isinstance(bound, (int, float)) and math.isfinite(bound)
        ):
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
    """The best member of checkpoint ``label`` within the budget.

    Among the members satisfying every given bound (latency median at
    ``batch_size`` <= ``max_latency_ms``, FLOPs <= ``max_flops``, metric >=
    ``min_metric``), the one with the highest metric; ties go to the lower
    latency, then the lower FLOPs, then fewer parameters, then the order
    of the menu.

    ``menu``: a menu (:func:`mmst.analysis.build_menu`); ``label``:
    default the last checkpoint; bounds in ms, FLOPs of one image and the
    evaluator's unit (e.g. % for accuracy/top1); ``batch_size``: default
    the menu's ``latency_batch_size``. Returns the chosen row of
    ``menu['members']``.

    Raises:
        ValueError: ``label`` or ``batch_size`` is not in the menu, or a
            bound is not a finite number.
        BudgetError: No member satisfies the bounds; the message names the
            cheapest member under each constrained cost (the best one under
            ``min_metric``) with its numbers.
    """
    label, batch_size = _check_choice(
        menu,
        label,
        batch_size,
        {
            '--max-latency-ms': max_latency_ms,
            '--max-flops': max_flops,
            '--min-metric': min_metric,
        },
    )
    rt = menu.get('latency_runtime', 'eager')
    members = [
        m for m in menu['members'] if member_metric(m, label) is not None
    ]
    if not members:
        raise ValueError(f'the menu has no evaluated member of {label!r}')

    def lat(m: dict) -> float:
        return _lat(m, batch_size, rt)

    def value(m: dict) -> float:
        return member_metric(m, label)

    def fits(m: dict) -> bool:
        if max_latency_ms is not None and lat(m) > max_latency_ms:
            return False
        if max_flops is not None and _inf(m.get('flops')) > max_flops:
            return False
        return min_metric is None or value(m) >= min_metric

    fitting = [(i, m) for i, m in enumerate(members) if fits(m)]
    if not fitting:
        raise _no_fit(
            menu,
            members,
            label,
            batch_size,
            max_latency_ms,
            max_flops,
            min_metric,
        )
    return min(
        fitting,
        key=lambda im: (
            -value(im[1]),
            lat(im[1]),
            _inf(im[1].get('flops')),
            im[1]['params'],
            im[0],
        ),
    )[1]


def _no_fit(
    menu, members, label, batch_size, max_latency_ms, max_flops, min_metric
) -> BudgetError:
    """The error of an impossible budget: the bounds, and the member
    nearest to each."""
    rt, metric = menu.get('latency_runtime', 'eager'), menu['metric']
    bounds, nearest = [], []
    for bound, text, what, key in (
        (
            max_latency_ms,
            lambda b: f'latency <= {b:g} ms at batch {batch_size}',
            'the fastest member is ',
            lambda m: (_lat(m, batch_size, rt), -member_metric(m, label)),
        ),
        (
            max_flops,
            lambda b: f'FLOPs <= {b:g}',
            'the member with the fewest FLOPs is ',
            lambda m: (_inf(m.get('flops')), -member_metric(m, label)),
        ),
        (
            min_metric,
            lambda b: f'{metric} >= {b:g}',
            f'the member with the highest {metric} is ',
            lambda m: (-member_metric(m, label), _lat(m, batch_size, rt)),
        ),
    ):
        if bound is not None:
            bounds.append(text(bound))
            best = min(members, key=key)
            nearest.append(
                what + _describe(best, label, batch_size, metric, rt)
            )
    return BudgetError(
        f'no member of {label!r} satisfies {" and ".join(bounds)}; '
        + '; '.join(nearest)
    )
