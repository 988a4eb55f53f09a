"""What an ST run costs relative to conventional training (CT).

Every ST iteration runs the main network's pass and ``num_subnets``
sub-network passes (each a forward and a backward; none before
``subnet_schedule``'s ``begin``). :class:`FlopMeter`
counts the FLOPs of each pass as it runs; :class:`STCostHook` turns them
into three numbers, logged during training, added to every validation's
metrics, logged at the end and written to ``cost.json`` in the run's log
directory:

- ``flops_ratio``: FLOPs of the step's passes over those of its main pass
  alone (CT's step is the main pass: 1.0);
- ``ct_epochs``: CT-epoch equivalents spent so far: the sum over
  iterations of their ``flops_ratio``, over the iterations per epoch
  (``len(train_dataloader)``); a CT run of E epochs spends E;
- ``images_per_s``: training images per second over all processes,
  measured from each iteration's start to its end (``train_step`` and the
  hooks around it; data loading and validation are not counted).
"""

import logging
import os.path as osp
import time
from contextlib import contextmanager
from typing import Iterator, List, Optional, Tuple

from mmengine.dist import get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from mmst.fileio import write_json_atomic
from mmst.registry import HOOKS

#: Message-hub runtime info that carries the totals (checkpoints do, so a
#: resumed run goes on counting).
COST_INFO_KEY = 'mmst_cost'
#: Prefix of the cost entries in the validation metrics.
METRIC_PREFIX = 'cost/'


class _FlopCount(TorchDispatchMode):
    """Sums the FLOPs of every op run inside it (forward and backward),
    with PyTorch's own formulas (``torch.utils.flop_counter``, the counter
    of ``FlopCounterMode``: a multiply-add is 2 FLOPs; convolutions,
    matrix products and attention are counted; normalisations,
    activations, pooling, resizing and additions are not). Without
    ``FlopCounterMode``'s per-module tracking, which in one hand-made
    comparison slowed a CPU ResNet-20 step about five times as much."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


class FlopMeter:
    """FLOPs of the passes of one training step, pass by pass.

    ``StimulativeTraining.train_step`` runs each pass (forward and
    backward) inside :meth:`count` when its ``flop_meter`` is set.
    """

    def __init__(self) -> None:
        #: (sub-network or None for the main pass, shorter input side in
        #: px, FLOPs) of each pass of the current step, in order.
        self.passes: List[Tuple[Optional[tuple], int, int]] = []

    @contextmanager
    def count(self, subnet: Optional[tuple], size: int) -> Iterator[None]:
        """Count the FLOPs run inside as one pass of ``subnet`` (None: the
        main network) at a shorter input side of ``size`` px."""
        counter = _FlopCount()
        with counter:
            yield
        self.passes.append((subnet, size, counter.total))

    def pop(self) -> List[Tuple[Optional[tuple], int, int]]:
        """The passes counted since the last call."""
        passes, self.passes = self.passes, []
        return passes


def _batch_images(data_batch) -> Optional[int]:
    """Images in one process's batch (OpenMMLab's ``dict(inputs=...)``)."""
    inputs = data_batch.get('inputs') if isinstance(data_batch, dict) else None
    return None if inputs is None else len(inputs)


@HOOKS.register_module()
class STCostHook(Hook):
    """Logs what a run costs relative to CT (the module's docstring says
    how each number is defined).

    ``mmst.apis.prepare_config`` (``tools/train.py``) adds it to the
    ``custom_hooks`` of every config whose model is ``StimulativeTraining``;
    other runners add ``dict(type='mmst.STCostHook')`` themselves. With a
    plain (non-ST) model every step is one main pass: ``flops_ratio`` is 1
    and no FLOPs are counted.

    Priority 5: after ``SubnetMetricsHook`` (``HIGHEST``) adds the
    sub-networks' metrics, before ``RuntimeInfoHook`` (``VERY_HIGH``)
    records the metrics and ``LoggerHook`` logs them.
    """

    priority = 5

    def __init__(self) -> None:
        self.meter = FlopMeter()
        self._st_model = None
        self._start = 0.0

    # -- totals, kept in the message hub --------------------------------
    @staticmethod
    def _totals(runner) -> dict:
        totals = runner.message_hub.get_info(COST_INFO_KEY)
        return (
            dict(totals)
            if totals
            else dict(iters=0, ct_iters=0.0, images=0, seconds=0.0)
        )

    @staticmethod
    def summary(runner) -> Optional[dict]:
        """``flops_ratio`` (mean over the iterations so far),
        ``ct_epochs``, ``images_per_s`` and ``iters`` of the training so
        far (resumed runs included); None before any iteration."""
        totals = runner.message_hub.get_info(COST_INFO_KEY)
        if not totals or not totals['iters']:
            return None
        per_epoch = len(runner.train_dataloader)
        seconds = totals['seconds']
        return dict(
            flops_ratio=totals['ct_iters'] / totals['iters'],
            ct_epochs=totals['ct_iters'] / per_epoch,
            images_per_s=totals['images'] / seconds if seconds else 0.0,
            iters=totals['iters'],
        )

    # -- hooks ------------------------------------------------------------
    def before_train(self, runner) -> None:
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        if hasattr(model, 'flop_meter') and model.num_subnets > 0:
            model.flop_meter = self.meter
            self._st_model = model

    def before_train_iter(self, runner, batch_idx: int, data_batch=None):
        self._start = time.perf_counter()

    def after_train_iter(
        self, runner, batch_idx: int, data_batch=None, outputs=None
    ) -> None:
        seconds = time.perf_counter() - self._start
        passes = self.meter.pop()
        ratio = 1.0
        if self._st_model is not None and passes:
            ratio = sum(p[2] for p in passes) / passes[0][2]
        totals = self._totals(runner)
        totals['iters'] += 1
        totals['ct_iters'] += ratio
        totals['seconds'] += seconds
        images = _batch_images(data_batch)
        if images is not None:
            totals['images'] += images * get_world_size()
        runner.message_hub.update_info(COST_INFO_KEY, totals)
        runner.message_hub.update_scalar('train/flops_ratio', ratio)

    def after_val_epoch(self, runner, metrics: Optional[dict] = None):
        summary = self.summary(runner)
        if metrics is not None and summary is not None:
            metrics.update(
                {
                    METRIC_PREFIX + k: summary[k]
                    for k in ('flops_ratio', 'ct_epochs', 'images_per_s')
                }
            )

    def after_train(self, runner) -> None:
        if self._st_model is not None:
            self._st_model.flop_meter = None
        summary = self.summary(runner)
        if summary is None:
            return
        print_log(
            f'cost of this run relative to conventional training: '
            f'{summary["ct_epochs"]:.3f} CT-epoch equivalents in '
            f'{summary["iters"]} iterations ({summary["flops_ratio"]:.3f}x '
            f"a CT step's FLOPs per iteration, counted), "
            f'{summary["images_per_s"]:.1f} training images/s measured',
            'current',
            logging.INFO,
        )
        if is_main_process():
            write_json_atomic(summary, osp.join(runner.log_dir, 'cost.json'))
