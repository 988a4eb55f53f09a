"""What the analysis reports (the loafing table, the logit magnitude, the
depth menu) write the same way: JSON (atomically), CSV, Markdown tables,
matplotlib figures, FLOPs units and number formats."""

import csv
import os
import os.path as osp
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from mmst.fileio import write_json_atomic

#: Colours and markers of the series (one per checkpoint), in turn.
COLORS = ('tab:blue', 'tab:red', 'tab:green', 'tab:purple', 'tab:orange')
MARKERS = ('o', 's', '^', 'D', 'v')


def style(index: int) -> Tuple[str, str]:
    """The colour and marker of series ``index``."""
    return COLORS[index % len(COLORS)], MARKERS[index % len(MARKERS)]


def labels_of(result: dict) -> List[str]:
    """The checkpoint labels of a report (its series), in order."""
    return [c['label'] for c in result['checkpoints']]


def flops_unit(rows: Iterable[dict]) -> Tuple[str, float]:
    """``('GFLOPs', 1e9)`` when a row's ``flops`` reaches 1e9, else
    ``('MFLOPs', 1e6)``."""
    flops = [r['flops'] for r in rows if r.get('flops')]
    if flops and max(flops) >= 1e9:
        return 'GFLOPs', 1e9
    return 'MFLOPs', 1e6


def fmt(value: Optional[float], digits: int = 2) -> str:
    """``value`` with ``digits`` decimals; ``'-'`` for None."""
    return '-' if value is None else f'{value:.{digits}f}'


def write_csv(path: str, header: Sequence, rows: Iterable[Sequence]) -> None:
    """A CSV file: ``header``, then ``rows``."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def markdown_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    caption: Optional[str] = None,
) -> str:
    """A Markdown table (after ``caption`` and an empty line, if given)."""
    lines = [] if caption is None else [caption, '']
    lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(cells) + ' |' for cells in rows]
    return '\n'.join(lines) + '\n'


def figure(ncols: int, size: Tuple[float, float]):
    """``(fig, axes)``: one row of ``ncols`` axes, ``size`` inches, Agg."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=size, squeeze=False)
    return fig, list(axes[0])


def save_figure(fig, path: str, dpi: int, rect=None) -> None:
    """Lay out, write ``path`` (its folder created) and close ``fig``."""
    import matplotlib.pyplot as plt

    fig.tight_layout(**({} if rect is None else dict(rect=rect)))
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def write_outputs(
    result: dict,
    out_dir: str,
    stem: str,
    csv: Optional[Callable[[dict, str], None]] = None,
    md: Optional[Callable[[dict], str]] = None,
    png: Optional[Callable[[dict, str], None]] = None,
    indent: int = 2,
    plot_path: Optional[str] = None,
) -> Dict[str, str]:
    """Write ``out_dir/<stem>.json`` (atomically) and, where given,
    ``.csv`` (``csv(result, path)``), ``.md`` (``md(result)``) and ``.png``
    (``png(result, path)``, or ``plot_path``); return the paths."""
    os.makedirs(out_dir, exist_ok=True)
    kinds = dict(json=True, csv=csv, md=md, png=png)
    paths = {k: osp.join(out_dir, f'{stem}.{k}') for k in kinds if kinds[k]}
    write_json_atomic(result, paths['json'], indent)
    if csv:
        csv(result, paths['csv'])
    if md:
        with open(paths['md'], 'w') as f:
            f.write(md(result))
    if png:
        paths['png'] = plot_path or paths['png']
        png(result, paths['png'])
    return paths
