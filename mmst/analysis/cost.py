"""Cost of a sub-network: parameters it uses, FLOPs of one forward and
latency of a model's ``mode='tensor'`` forward on a preprocessed batch on
the user's device, eager PyTorch (and ONNX Runtime when installed): median
and IQR of timed runs after warm-up runs (CUDA synchronised)."""

import inspect
import logging
import os
import platform
import statistics
import time
from contextlib import nullcontext, suppress
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmst.subnet import ElasticDepth
from mmst.subnet.space import Subnet

from .sweep import quiet_logs

#: How :func:`count_flops` counts.
FLOPS_CONVENTION = (
    "mmengine's FlopAnalyzer (fvcore convention: one multiply-add = 1 FLOP; "
    'BN, ReLU and additions not counted), batch of one at the input size'
)


def count_params(
    arch: nn.Module, elastic: ElasticDepth, subnet: Optional[Subnet]
) -> int:
    """Parameters of ``arch`` that ``subnet`` uses (all of them for
    ``subnet=None``): the total less those of the blocks it skips."""
    skipped = [
        p.numel()
        for kept, stage in zip(subnet or (), elastic.stages)
        for i, block in enumerate(stage)
        if i not in kept
        for p in block.parameters()
    ]
    return sum(p.numel() for p in arch.parameters()) - sum(skipped)


class TensorOutputs(nn.Module):
    """One input in, tensors out (FLOPs counting, ONNX export):
    ``model(inputs, None, 'tensor')``, or ``model.extract_feat(inputs)``
    with ``features=True``; with ``flatten`` a tuple of tensors
    (:func:`flatten_outputs`: the ONNX graph's outputs, in order)."""

    def __init__(
        self, model: nn.Module, flatten: bool = True, features: bool = False
    ) -> None:
        super().__init__()
        self.model, self.flatten, self.features = model, flatten, features

    def forward(self, inputs: torch.Tensor):
        if self.features:
            outputs = self.model.extract_feat(inputs)
        else:
            outputs = self.model(inputs, None, 'tensor')
        return tuple(flatten_outputs(outputs)) if self.flatten else outputs


def flatten_outputs(outputs) -> List[torch.Tensor]:
    """Tensors of a (nested) tuple / list / dict of tensors, in order.

    Raises:
        TypeError: A leaf is not a tensor.
    """
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, (list, tuple)):
        return [t for o in outputs for t in flatten_outputs(o)]
    if isinstance(outputs, dict):
        return [t for k in outputs for t in flatten_outputs(outputs[k])]
    raise TypeError(
        f"mode='tensor' output of type {type(outputs).__name__} cannot be "
        'exported to ONNX; allowed: tensors and (nested) tuples / lists / '
        'dicts of tensors'
    )


@torch.no_grad()
def count_flops(
    arch: nn.Module,
    input_shape: Sequence[int],
    elastic: Optional[ElasticDepth] = None,
    subnet: Optional[Subnet] = None,
) -> Optional[int]:
    """FLOPs (:data:`FLOPS_CONVENTION`) of one forward (``mode='tensor'``)
    of ``arch`` at ``input_shape`` (C, H, W; batch of one) run as
    ``subnet``; None (with a logged warning) where mmengine cannot trace it.
    """
    from mmengine.analysis import FlopAnalyzer

    param = next(arch.parameters(), None)
    device = param.device if param is not None else 'cpu'
    inputs = torch.zeros((1, *input_shape), device=device)
    was_training = arch.training
    arch.eval()
    traced = arch
    if 'mode' in inspect.signature(arch.forward).parameters:
        traced = TensorOutputs(arch, flatten=False)
    active = nullcontext() if elastic is None else elastic.activate(subnet)
    try:
        with quiet_logs(logging.ERROR), active:
            analyzer = FlopAnalyzer(traced, (inputs,))
            analyzer.unsupported_ops_warnings(False)
            return int(analyzer.uncalled_modules_warnings(False).total())
    except Exception as e:  # tracing is best effort
        name, error = type(arch).__name__, f'{type(e).__name__}: {e}'
        message = f'cannot count FLOPs of {name} ({error})'
        print_log(message, 'current', logging.WARNING)
        return None
    finally:
        arch.train(was_training)


DEVICES = ('cpu', 'cuda')


def resolve_device(name: str) -> torch.device:
    """``'cpu'`` or ``'cuda'`` (``'cuda:N'``) as a ``torch.device``.

    Raises:
        ValueError: ``name`` is not a CPU / CUDA device, or CUDA was asked
            for and this torch build or machine has no CUDA device.
    """
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in DEVICES:
        raise ValueError(
            f'--device {name!r} is invalid; allowed: cpu | cuda | cuda:N'
        )
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(
            f'--device {name!r} needs a CUDA device, but torch.cuda.'
            f'is_available() is False (torch {torch.__version__}, CUDA '
            f'build: {torch.version.cuda}); allowed here: cpu'
        )
    count = torch.cuda.device_count() if device.type == 'cuda' else 0
    if count and (device.index or 0) >= count:
        raise ValueError(
            f'--device {name!r} is invalid: {count} CUDA device(s); '
            f'allowed: cuda:0..cuda:{count - 1}'
        )
    return device


def _cpu_model() -> str:
    with suppress(OSError), open('/proc/cpuinfo') as f:
        for line in f:
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> Dict[str, object]:
    """What the latencies were measured on: CPU model, logical CPUs, torch
    threads, torch / CUDA versions and, on CUDA, the GPU's name."""
    info: Dict[str, object] = dict(
        cpu=_cpu_model(),
        cpu_count=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        torch=torch.__version__,
        python=platform.python_version(),
        platform=platform.platform(),
        device=str(device),
    )
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
        info['cuda'] = torch.version.cuda
    info['onnxruntime'] = None
    if onnxruntime_available():
        import onnxruntime

        info['onnxruntime'] = onnxruntime.__version__
    return info


def summarize(times_ms: Sequence[float]) -> Dict[str, float]:
    """Median, quartiles (``statistics.quantiles``, inclusive method),
    interquartile range, minimum and count of ``times_ms``."""
    times = sorted(float(t) for t in times_ms)
    if not times:
        raise ValueError('no timings to summarize')
    q1 = q3 = times[0]
    if len(times) > 1:
        q1, _, q3 = statistics.quantiles(times, n=4, method='inclusive')
    median = statistics.median(times)
    quartiles = dict(median_ms=median, q1_ms=q1, q3_ms=q3, iqr_ms=q3 - q1)
    return dict(quartiles, min_ms=times[0], runs=len(times))


def time_runs(
    fn: Callable[[], object],
    warmup: int,
    repeats: int,
    device: Optional[torch.device] = None,
) -> List[float]:
    """The wall-clock times (ms) of ``repeats`` calls of ``fn`` after
    ``warmup`` untimed ones. Raises ValueError: ``warmup < 0`` or
    ``repeats < 1``."""
    if warmup < 0:
        raise ValueError(f'warmup={warmup!r} is invalid; allowed: >= 0')
    if repeats < 1:
        raise ValueError(f'repeats={repeats!r} is invalid; allowed: >= 1')

    def sync() -> None:
        if device is not None and device.type == 'cuda':
            torch.cuda.synchronize(device)

    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def tile_batch(
    inputs: torch.Tensor, data_samples: Optional[list], batch_size: int
) -> Tuple[torch.Tensor, Optional[list]]:
    """``inputs`` (N, ...) and ``data_samples`` repeated cyclically to
    ``batch_size``. Raises ValueError: ``batch_size < 1``."""
    if batch_size < 1:
        raise ValueError(
            f'batch size {batch_size!r} is invalid; allowed: >= 1'
        )
    n = inputs.shape[0]
    index = torch.arange(batch_size, device=inputs.device) % n
    tiled = inputs.index_select(0, index).contiguous()
    if data_samples is None:
        return tiled, None
    return tiled, [data_samples[i % n] for i in range(batch_size)]


@torch.no_grad()
def eager_latency(
    model: nn.Module,
    inputs: torch.Tensor,
    data_samples: Optional[list] = None,
    warmup: int = 5,
    repeats: int = 30,
) -> Dict[str, float]:
    """:func:`summarize` of ``model(inputs, data_samples, mode='tensor')``
    in eval mode without autograd on ``inputs``' device (the model's too).
    """
    was_training = model.training
    model.eval()
    try:
        run = lambda: model(inputs, data_samples, mode='tensor')  # noqa: E731
        times = time_runs(run, warmup, repeats, inputs.device)
    finally:
        model.train(was_training)
    return summarize(times)


def onnxruntime_available() -> bool:
    """Whether ``onnx`` (to export) and ``onnxruntime`` can be imported."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnxruntime_latency(
    onnx_file: str,
    inputs: torch.Tensor,
    warmup: int = 5,
    repeats: int = 30,
    threads: Optional[int] = None,
    feeds: Optional[dict] = None,
) -> Dict[str, float]:
    """:func:`summarize` of one ONNX Runtime ``run`` (CPU provider,
    ``threads``: ``intra_op_num_threads``, None: ORT's default) of
    ``onnx_file`` on ``inputs`` (float32 on the CPU, its first input) and
    ``feeds`` (its other inputs, {name: numpy array}).
    Raises ImportError: onnxruntime is not installed.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        onnx_file, options, providers=['CPUExecutionProvider']
    )
    name = session.get_inputs()[0].name
    feed = {name: inputs.detach().cpu().float().numpy(), **(feeds or {})}
    times = time_runs(lambda: session.run(None, feed), warmup, repeats)
    return summarize(times)
