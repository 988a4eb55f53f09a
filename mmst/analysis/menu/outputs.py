"""The menu's files: ``menu.json``, ``.csv``, ``.md`` and ``.png``."""

import functools
import math
import os.path as osp
from typing import Dict, List, Optional, Tuple

from .. import report
from .frontier import frontier, member_cost, member_metric


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
