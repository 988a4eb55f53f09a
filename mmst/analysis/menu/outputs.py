"""A menu's Pareto frontiers, the choice of one member under a budget
(pure functions of the menu dict, no torch) and the menu's files:
``menu.json``, ``.csv``, ``.md`` and ``.png``."""

import functools
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from .. import report

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


def _latency(m: dict, key: str, bs: int) -> Optional[dict]:
    return (m.get(key) or {}).get(str(bs))


def _fronts(menu: dict, m: dict, label: str) -> Tuple[bool, bool]:
    """Whether ``m`` is on the latency and on the FLOPs frontier."""
    front = menu.get('frontiers', {}).get(label, {})
    return tuple(m['name'] in front.get(k, []) for k in ('latency', 'flops'))


def write_csv(menu: dict, path: str) -> None:
    """One row per member: sizes, latency (median and IQR per batch size,
    ONNX Runtime's median), the metric and frontier flags per checkpoint."""
    labels = report.labels_of(menu)
    sizes = menu['settings']['batch_sizes']
    ort = menu['settings'].get('onnxruntime')
    header = ['member', 'subnet', 'blocks', 'params', 'flops']
    for bs in sizes:
        header += [f'latency_ms_b{bs}', f'latency_iqr_ms_b{bs}']
        header += [f'ort_latency_ms_b{bs}'] if ort else []
    for label in labels:
        header += [f'{label} {menu["metric"]}']
        header += [f'{label} pareto_latency', f'{label} pareto_flops']

    def row(m: dict) -> list:
        cells = [m['name'], ' '.join(map(str, m['subnet'])), m['blocks']]
        cells += [m['params'], '' if m['flops'] is None else m['flops']]
        for bs in sizes:
            entry = _latency(m, 'latency', bs) or {}
            cells += [entry.get('median_ms', ''), entry.get('iqr_ms', '')]
            if ort:
                o = _latency(m, 'onnxruntime_latency', bs) or {}
                cells += [o.get('median_ms', '')]
        for label in labels:
            value = member_metric(m, label)
            cells += ['' if value is None else value]
            cells += [int(on) for on in _fronts(menu, m, label)]
        return cells

    report.write_csv(path, header, map(row, menu['members']))


def _caption(menu: dict) -> str:
    st, machine = menu['settings'], menu['machine']
    rt = menu.get('latency_runtime', 'eager')
    return (
        f'Depth menu of `{osp.basename(menu["config"])}`: {menu["metric"]} '
        f'on the {st["split"]} set ({menu.get("eval_images")} images), '
        + (
            f'each member with BN statistics re-estimated on '
            f'{st["bn_recal_images"]} training images'
            if menu.get('bn_stats') == 're-estimated'
            else f'BN statistics: {menu.get("bn_stats")}'
        )
        + f'; latency: median (IQR) of {st["repeats"]} runs after '
        f'{st["warmup"]} warm-up runs on {st["device"]} '
        f'({machine.get("gpu") or machine["cpu"]}, {st["threads"]} '
        f'thread(s), torch {machine["torch"]}). '
        + (
            f'FLOPs: {menu["flops_scope"]} only. '
            if menu.get('flops_scope') not in (None, 'model')
            else ''
        )
        + f'`*`: on the Pareto frontier of {menu["metric"]} vs '
        f'{"ONNX Runtime " if rt == "onnxruntime" else ""}latency at batch '
        f'{menu["latency_batch_size"]}; `f`: vs FLOPs.'
    )


def markdown_table(menu: dict, chosen: Optional[dict] = None) -> str:
    """The menu as a Markdown table (members by latency, frontier members
    marked) after a caption naming the settings and the machine."""
    labels = report.labels_of(menu)
    sizes = menu['settings']['batch_sizes']
    unit, scale = report.flops_unit(menu['members'])
    lb = menu['latency_batch_size']
    rt = menu.get('latency_runtime', 'eager')
    ort = any(m.get('onnxruntime_latency') for m in menu['members'])
    runtimes = ['latency'] + (['onnxruntime_latency'] if ort else [])
    header = ['member', 'blocks', 'params (M)', unit]
    header += [f'ms (b={bs})' for bs in sizes]
    header += [f'ORT ms (b={bs})' for bs in sizes] if ort else []
    header += labels

    def row(m: dict) -> List[str]:
        flops = None if m['flops'] is None else m['flops'] / scale
        name = f'`{m["name"]}`'
        name += ' (chosen)' if chosen is not None and chosen is m else ''
        cells = [name, str(m['blocks']), f'{m["params"] / 1e6:.3f}']
        cells.append(report.fmt(flops))
        for key in runtimes:
            for bs in sizes:
                e = _latency(m, key, bs) or {}
                median, iqr = e.get('median_ms'), e.get('iqr_ms')
                cells.append(e and f'{median:.3g} ({iqr:.2g})' or '-')
        for label in labels:
            on_lat, on_flops = _fronts(menu, m, label)
            marks = ('*' if on_lat else '') + ('f' if on_flops else '')
            metric = report.fmt(member_metric(m, label))
            cells.append(f'{metric} {marks}' if marks else metric)
        return cells

    def key(m):
        cost = member_cost(m, 'latency', lb, rt)
        return (math.inf if cost is None else cost, m['blocks'])

    rows = map(row, sorted(menu['members'], key=key))
    return report.markdown_table(header, rows, _caption(menu))


def _panel(ax, menu: dict, cost: str, scale: float, chosen) -> None:
    """One cost's scatter per checkpoint, frontier stepped, chosen ringed."""
    lb = menu['latency_batch_size']
    rt = menu.get('latency_runtime', 'eager')
    for i, label in enumerate(report.labels_of(menu)):
        color, marker = report.style(i)
        pts = [
            (member_cost(m, cost, lb, rt), member_metric(m, label), m['name'])
            for m in menu['members']
        ]
        pts = [p for p in pts if p[0] is not None and p[1] is not None]
        if not pts:
            continue
        xs, ys = [p[0] / scale for p in pts], [p[1] for p in pts]
        ax.scatter(xs, ys, color=color, marker=marker, alpha=0.35, s=22)
        front = set(frontier(menu, label, cost, lb))
        fp = sorted((p for p in pts if p[2] in front), key=lambda p: p[0])
        xs, ys = [p[0] / scale for p in fp], [p[1] for p in fp]
        ax.step(xs, ys, where='post', color=color, linewidth=1.5)
        name = f'{label} (frontier: {len(fp)} of {len(pts)})'
        kw = dict(color=color, marker=marker, edgecolors='black', label=name)
        ax.scatter(xs, ys, s=34, linewidths=0.5, **kw)
        for x, y, name in pts:
            if chosen == (label, name):
                kw = dict(facecolors='none', edgecolors='black', s=200)
                what = f'chosen: {label} {name}'
                ax.scatter([x / scale], [y], linewidths=1.5, label=what, **kw)


def plot(
    menu: dict,
    path: str,
    title: Optional[str] = None,
    chosen: Optional[Tuple[str, str]] = None,
) -> None:
    """Metric vs latency (at the menu's latency batch size) and vs FLOPs,
    one series per checkpoint; ``chosen`` = (label, member name) ringed."""
    unit, scale = report.flops_unit(menu['members'])
    ort = menu.get('latency_runtime', 'eager') == 'onnxruntime'
    runtime = 'ONNX Runtime' if ort else 'PyTorch'
    xlabel = (
        f'{runtime} latency (ms, batch {menu["latency_batch_size"]}, '
        f'{menu["settings"]["device"]})'
    )
    panels = [('latency', xlabel, 1.0)]
    if all(m.get('flops') is not None for m in menu['members']):
        panels.append(('flops', unit, scale))
    fig, axes = report.figure(len(panels), (5.6 * len(panels), 4.4))
    for ax, (cost, xlabel, sc) in zip(axes, panels):
        _panel(ax, menu, cost, sc, chosen)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(menu['metric'])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc='lower right')
    title = title or f'{osp.basename(menu["config"])}: depth menu'
    fig.suptitle(title, fontsize=10)
    report.save_figure(fig, path, dpi=90)


def write_outputs(
    menu: dict,
    out_dir: str,
    plot_path: Optional[str] = None,
    title: Optional[str] = None,
    chosen: Optional[Tuple[str, dict]] = None,
) -> Dict[str, str]:
    """Write ``menu.json``, ``.csv``, ``.md`` and ``.png`` (or
    ``plot_path``), ``chosen`` = (label, member) marked; return the paths."""
    md = functools.partial(markdown_table, chosen=chosen and chosen[1])
    ring = (chosen[0], chosen[1]['name']) if chosen else None
    png = functools.partial(plot, title=title, chosen=ring)
    return report.write_outputs(
        menu, out_dir, 'menu', write_csv, md, png, 1, plot_path
    )
