"""The units of a menu (the metric of the members of one checkpoint in one
sweep pass; the latency of one member; its FLOPs) and the batches they run
on, decoded once and kept in memory."""

import copy
import functools
import itertools
import logging
import os.path as osp
import tempfile
import time
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import torch

from mmst.engine.bn_recal import _batch_len, closing_iter

from .. import cost
from ..sweep import Sweep, TaskMetric, progress, quiet_logs, select_metric
from .settings import DEFAULT_CACHE_MB, save


class CachedBatches:
    """The collated ``batches`` of a loader (its ``dataset`` and
    ``batch_size``) kept in memory and yielded again, in order, on every
    iteration as deep copies (a model or evaluator that writes into the
    data samples cannot change what the next member sees)."""

    def __init__(self, batches: list, dataset, batch_size: int) -> None:
        self.batches = batches
        self.dataset = dataset
        self.batch_size = batch_size

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[dict]:
        for batch in self.batches:
            yield copy.deepcopy(batch)


def _nbytes(obj: Any) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    return 0


def cache_loader(
    loader, max_mb: float = DEFAULT_CACHE_MB, max_batches: Optional[int] = None
) -> Optional[CachedBatches]:
    """The batches of one pass of ``loader`` (at most ``max_batches``), or
    None (nothing kept) when their inputs would exceed ``max_mb`` MiB
    (estimated from the first batch, checked as it goes)."""
    total = len(loader)
    if max_batches is not None:
        total = min(total, max_batches)
    batches, used = [], 0
    with closing_iter(loader) as iterator:
        for data in itertools.islice(iterator, total):
            inputs = data.get('inputs') if isinstance(data, dict) else data
            used += _nbytes(inputs)
            # the first batch times the batches, then the running total
            if used * (1 if batches else total) > max_mb * 2**20:
                return None
            batches.append(data)
    batch_size = getattr(loader, 'batch_size', None) or (
        _batch_len(batches[0]) if batches else 1
    )
    return CachedBatches(batches, loader.dataset, batch_size)


def flops_counter(
    arch: torch.nn.Module, input_shape: Sequence[int], elastic
) -> Tuple[Callable, Optional[str]]:
    """``(count(subnet), scope)``: FLOPs of the whole ``mode='tensor'``
    forward (scope ``'model'``) where mmengine can trace it, else (e.g.
    two-stage detectors, whose forward needs data samples) of
    ``extract_feat`` (``'backbone+neck'``: the depth changes only the
    backbone), else none (``None``)."""
    candidates = [(arch, 'model')]
    if hasattr(arch, 'extract_feat'):
        features = cost.TensorOutputs(arch, flatten=False, features=True)
        candidates.append((features, 'backbone+neck'))
    for module, scope in candidates:
        if cost.count_flops(module, input_shape, elastic, None) is not None:
            return functools.partial(
                cost.count_flops, module, input_shape, elastic
            ), scope
    return (lambda sub: None), None


class Units:
    """One build's bookkeeping: the menu (saved after every unit), the
    timings, the progress bar and the ``on_unit(menu, unit)`` callback."""

    def __init__(self, menu: dict, st, on_unit: Optional[Callable]) -> None:
        self.menu, self.st, self.on_unit = menu, st, on_unit
        self.timings = dict.fromkeys(('cache_s', 'recal_s', 'eval_s'), 0.0)
        self.timings['latency_s'] = 0.0
        self.run: dict = {}
        self.bar = None

    def save(self) -> None:
        self.run['timings'] = {k: round(v, 3) for k, v in self.timings.items()}
        save(self.menu, self.st.out_dir)

    def start(self, resumed: bool, count: int) -> None:
        """Record a run of ``count`` units; open the progress bar."""
        started = time.strftime('%Y-%m-%dT%H:%M:%S%z')
        self.run = dict(started=started, resumed=resumed, units=count)
        self.menu['runs'].append(self.run)
        save(self.menu, self.st.out_dir)
        self.bar = progress(count, 'depth menu', not self.st.progress)

    def done(self, unit: dict) -> None:
        self.save()
        self.bar.update(1)
        if self.on_unit is not None:
            self.on_unit(self.menu, unit)


def metric_units(
    units: Units, sweep: Sweep, st, label: str, path: str, todo: list
) -> None:
    """The metric (each member a unit) of ``todo`` ((subnet, row) pairs)
    for checkpoint ``label`` at ``path``: one :meth:`Sweep.run`."""
    bar, menu = units.bar, units.menu
    bar.set_postfix_str(f'{label}: {len(todo)} member(s)')
    with quiet_logs():
        sweep.load(path, st.strict)
    sweep.model.to(st.torch_device)

    def show(what: str) -> Callable[[int, int], None]:
        return lambda done, total: bar.set_postfix_str(
            f'{label}: {len(todo)} member(s), {what} batch {done}/{total}'
        )

    shows = map(show, ('BN re-estimation', 'evaluation'))
    subs = [s for s, _ in todo]
    found, used = sweep.run(subs, [TaskMetric()], *shows, units.timings)
    for (_, row), result in zip(todo, found):
        metrics = result['TaskMetric']
        key = menu['metric'] or select_metric(metrics, st.metric)
        if key not in metrics:
            raise ValueError(
                f"metric {key!r} is not among the evaluator's "
                f'metrics: {" | ".join(metrics)}'
            )
        menu['metric'] = key
        row['results'][label] = dict(
            metric=metrics[key], metrics=metrics, recal_images_used=used
        )
        units.done(dict(kind='metric', label=label, member=row['name']))


def _onnx_file(arch, input_shape: Sequence[int], folder: str):
    """The active sub-network of ``arch`` as an ONNX file in ``folder``;
    None, with a warning, when it does not export."""
    from mmst.deploy import export_onnx

    path = osp.join(folder, 'member.onnx')
    try:
        export_onnx(arch, path, input_shape=input_shape, force=True)
    except Exception as e:  # ORT latency is an extra column: best effort
        logging.getLogger(__name__).warning(
            f'cannot export to ONNX ({type(e).__name__}: {e}); no ONNX '
            'Runtime latency'
        )
        return None
    return path


def _ort_possible(arch) -> bool:
    """Whether the task of ``arch`` exports to ONNX (else a warning)."""
    from mmst.deploy import check_onnx_task

    try:
        check_onnx_task(arch)
    except ValueError as e:  # e.g. detectors: one warning
        logging.getLogger(__name__).warning('no ONNX Runtime latency: %s', e)
        return False
    return True


def latency_units(
    units: Units, sweep: Sweep, st, prepared: dict, todo: List[tuple]
) -> None:
    """The latency (each member a unit) of ``todo`` ((subnet, row) pairs)
    at every batch size on ``prepared``: eager, and ONNX Runtime if asked."""
    if not todo:  # ``prepared`` is None
        return
    arch, elastic = sweep.arch, sweep.elastic
    input_shape = units.menu['input_shape']
    inputs = prepared['inputs'].to(st.torch_device)
    samples = prepared.get('data_samples')
    ort_ok = st.ort and _ort_possible(arch)
    for sub, row in todo:
        units.bar.set_postfix_str(f'latency {row["name"]}')
        t0 = time.perf_counter()
        entry, ort_entry = {}, ({} if st.ort else None)
        with torch.no_grad(), tempfile.TemporaryDirectory(
            prefix='mmst_menu_onnx_'
        ) as onnx_dir, elastic.activate(sub):
            onnx_file = ort_ok and _onnx_file(arch, input_shape, onnx_dir)
            for bs in st.batch_sizes:
                x, s = cost.tile_batch(inputs, samples, bs)
                entry[str(bs)] = cost.eager_latency(
                    arch, x, s, st.warmup, st.repeats
                )
                if onnx_file:
                    ort_entry[str(bs)] = cost.onnxruntime_latency(
                        onnx_file, x, st.warmup, st.repeats, st.threads
                    )
        row['latency'] = entry
        row['onnxruntime_latency'] = ort_entry
        units.timings['latency_s'] += time.perf_counter() - t0
        units.done(dict(kind='latency', member=row['name']))
