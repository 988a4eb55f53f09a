"""The settings of a depth menu, checked once (:class:`MenuSettings`)."""

import os.path as osp
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import torch

from mmst.subnet import parse_subnet_specs

from ..latency import onnxruntime_available, resolve_device
from ..sweep import check_bn_recal_images, check_checkpoints
from .batches import DEFAULT_CACHE_MB
from .frontier import check_runtime


def default_out_dir(config: str) -> str:
    """``work_dirs/depth_menu/<config name>``."""
    return osp.join(
        'work_dirs', 'depth_menu', osp.splitext(osp.basename(config))[0]
    )


@dataclass
class MenuSettings:
    """What :func:`mmst.analysis.build_menu` measures, and how, checked on
    construction.

    Attributes (``depth_menu.py``'s options, ``docs/depth_menu.md``):
        config, checkpoints, labels, subnets, space, split, metric,
            max_images, seed, cfg_options, strict: As in
            :func:`mmst.analysis.run_loafing` (``strict=False`` is
            recorded in the settings).
        bn_recal_images (int): Images per re-estimation (0: stored).
        batch_sizes (Sequence[int]): Latency batch sizes.
        latency_batch_size (int, optional): The one whose latency the
            frontier and the budget use (default: the first).
        latency_runtime (str): Whose latency they use: ``'eager'``
            PyTorch or ``'onnxruntime'`` (needs ``ort``).
        warmup, repeats (int): Untimed, then timed runs (median, IQR).
        device (str): ``'cpu'``, ``'cuda'`` or ``'cuda:N'``: where
            evaluation and latency run (checked: ``torch_device``).
        threads (int, optional): ``torch.set_num_threads`` for the run.
        ort (bool, optional): Also time ONNX Runtime (None: when
            installed and the device is the CPU).
        out_dir (str, optional): Default
            ``work_dirs/depth_menu/<config name>``.
        force (bool): Restart instead of resuming / refusing.
        progress (bool): A tqdm bar on stderr.
        cache_mb (float): MiB the cached evaluation batches may take.

    Raises:
        ValueError: An invalid setting (named, with the allowed values).
        CheckpointError: A checkpoint is unreadable.
    """

    config: str
    checkpoints: Sequence[str]
    labels: Optional[Sequence[str]] = None
    subnets: Sequence = ('all',)
    space: Optional[str] = None
    bn_recal_images: int = 2000
    split: str = 'val'
    metric: Optional[str] = None
    max_images: Optional[int] = None
    seed: int = 0
    batch_sizes: Sequence[int] = (1,)
    latency_batch_size: Optional[int] = None
    latency_runtime: str = 'eager'
    warmup: int = 5
    repeats: int = 30
    device: str = 'cpu'
    threads: Optional[int] = None
    ort: Optional[bool] = None
    cfg_options: Optional[dict] = None
    out_dir: Optional[str] = None
    force: bool = False
    progress: bool = True
    cache_mb: float = DEFAULT_CACHE_MB
    strict: bool = True
    torch_device: torch.device = field(init=False, repr=False)
    specs: List = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.checkpoints, self.labels = check_checkpoints(
            self.checkpoints, self.labels
        )
        self._check_batch_sizes()
        check_bn_recal_images(self.bn_recal_images)
        if self.warmup < 0 or self.repeats < 1:
            raise ValueError(
                f'--warmup {self.warmup} / --repeats {self.repeats} is '
                'invalid; allowed: warmup >= 0, repeats >= 1'
            )
        if self.threads is not None and self.threads < 1:
            raise ValueError(
                f'--threads {self.threads} is invalid; allowed: >= 1'
            )
        self.torch_device = resolve_device(self.device)
        self._check_runtimes()
        self.specs = parse_subnet_specs(self.subnets)
        self.out_dir = self.out_dir or default_out_dir(self.config)

    def _check_batch_sizes(self) -> None:
        sizes = self.batch_sizes = [int(b) for b in self.batch_sizes]
        if not sizes or any(b < 1 for b in sizes):
            raise ValueError(
                f'--batch-sizes {sizes} is invalid; allowed: integers >= 1'
            )
        if len(set(sizes)) < len(sizes):
            raise ValueError(
                f'--batch-sizes {sizes} is invalid; allowed: distinct sizes'
            )
        if self.latency_batch_size is None:
            self.latency_batch_size = sizes[0]
        if self.latency_batch_size not in sizes:
            raise ValueError(
                f'--latency-batch-size {self.latency_batch_size} is '
                'invalid; allowed: one of --batch-sizes '
                + ' | '.join(map(str, sizes))
            )

    def _check_runtimes(self) -> None:
        if self.ort is None:
            self.ort = (
                onnxruntime_available() and self.torch_device.type == 'cpu'
            )
        elif self.ort and not onnxruntime_available():
            raise ValueError(
                '--onnxruntime needs the onnx and onnxruntime packages (pip '
                'install onnx onnxruntime); they are not installed'
            )
        check_runtime(self.latency_runtime)
        if self.latency_runtime == 'onnxruntime' and not self.ort:
            raise ValueError(
                '--latency-runtime onnxruntime needs the ONNX Runtime '
                'latency (--onnxruntime: onnx and onnxruntime installed, '
                'device cpu)'
            )
