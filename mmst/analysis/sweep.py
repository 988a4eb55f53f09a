"""What the analysis tools evaluate (config, Runner as ``tools/test.py``
builds it, checkpoint, loaders, sub-network space) and the member sweep
over it (:func:`open_sweep`; ``docs/architecture.md``).
"""

import copy
import logging
import os.path as osp
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmst.apis import prepare_config
from mmst.converters.checkpoint_io import (
    check_readable,
    load_runner_checkpoint,
)
from mmst.engine import (
    build_recal_loader,
    elastic_of,
    member_bn_stats,
    run_members,
)
from mmst.engine.bn_recal import has_trainable_bn
from mmst.models.algorithms.stimulative import unwrap_st
from mmst.stack import load_config as stack_load_config
from mmst.subnet import ElasticDepth, SubnetSpace, resolve_subnets
from mmst.subnet.space import Subnet

#: The evaluation splits a config may name.
SPLITS = ('val', 'test')
OnBatch = Optional[Callable[[int, int], None]]


def _check_int(value, name: str, least: int, note: str = '') -> int:
    """``value`` if it is an integer >= ``least``, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(
            f'{name}{value!r} is invalid; allowed: an integer >= {least}'
            + note
        )
    return value


def load_config(
    config: str,
    cfg_options: Optional[dict] = None,
    split: str = 'val',
    max_images: Optional[int] = None,
) -> Config:
    """Read ``config`` as ``tools/test.py`` does, apply ``cfg_options``,
    keep the first ``max_images`` images of the ``split`` set.

    Raises:
        ValueError: Unknown ``split``, no such loader / evaluator, or
            ``max_images < 1``. StackError: A task library is missing.
    """
    if split not in SPLITS:
        raise ValueError(
            f'split={split!r} is invalid; allowed: ' + ' | '.join(SPLITS)
        )
    cfg = stack_load_config(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    loader = cfg.get(f'{split}_dataloader')
    if not loader or not cfg.get(f'{split}_evaluator'):
        raise ValueError(
            f'{config} has no {split}_dataloader / {split}_evaluator; '
            f'use --split {"test" if split == "val" else "val"}'
        )
    if max_images is not None:
        loader.dataset.indices = _check_int(max_images, '--max-images ', 1)
    prepare_config(cfg)
    return cfg


@contextmanager
def quiet_logs(level: int = logging.WARNING) -> Iterator[None]:
    """Raise the current MMLogger's level for the duration."""
    logger = MMLogger.get_current_instance()
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


def build_runner(cfg: Config, work_dir: str) -> Runner:
    """The Runner of (a copy of) ``cfg`` as ``tools/test.py`` builds it,
    its logs in ``work_dir``; nothing loaded or run, model in eval mode."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir, cfg.load_from, cfg.resume = work_dir, None, False
    cfg.log_level, cfg.launcher = 'WARNING', 'none'
    # a unique name: the logger and visualizer (named in upstream configs)
    # are per-name singletons; an earlier one's folder may be removed
    cfg.experiment_name = f'mmst_analysis_{uuid.uuid4().hex[:8]}'
    if isinstance(cfg.get('visualizer'), dict):
        cfg.visualizer['name'] = cfg.experiment_name
    build = Runner.from_cfg if 'runner_type' not in cfg else RUNNERS.build
    runner = build(cfg)
    runner.model.eval()
    return runner


def load_weights(runner: Runner, checkpoint: str, strict: bool = True) -> dict:
    """Load and return ``checkpoint`` (model left in eval mode).

    Raises:
        CheckpointError: Missing, unreadable, or ``strict`` and not fitting
            (:func:`mmst.converters.checkpoint_io.load_runner_checkpoint`).
    """
    ckpt = load_runner_checkpoint(runner, checkpoint, strict=strict)
    runner.model.eval()
    return ckpt


def model_space(
    model: nn.Module, preset: Optional[str] = None
) -> Tuple[ElasticDepth, SubnetSpace]:
    """The elastic backbone and sub-network space of ``model``; ``preset``
    (``'default'``, ``'space1'`` ...) overrides the depths.

    Raises:
        TypeError: No residual stages found (declare ``elastic_stages``).
        ValueError: ``preset`` is not a preset of this backbone.
    """
    elastic, space = elastic_of(model)
    if preset is not None:
        space = SubnetSpace(elastic.stage_depths, preset)
    return elastic, space


def build_evaluation(runner: Runner, cfg: Config, split: str = 'val'):
    """``(DataLoader, Evaluator)`` of the config's ``split``."""
    loader = runner.build_dataloader(cfg.get(f'{split}_dataloader'))
    return loader, build_evaluator(runner, cfg, split, loader.dataset)


def build_evaluator(runner: Runner, cfg: Config, split: str, dataset):
    """A new evaluator of ``split``, its ``dataset_meta`` from ``dataset``."""
    evaluator = runner.build_evaluator(cfg.get(f'{split}_evaluator'))
    metainfo = getattr(dataset, 'metainfo', None)
    if metainfo is not None:
        evaluator.dataset_meta = metainfo
    return evaluator


def input_shape_of(model: nn.Module, dataloader) -> Tuple[int, ...]:
    """(C, H, W) of the first preprocessed input of ``dataloader``."""
    data = model.data_preprocessor(next(iter(dataloader)), False)
    return tuple(data['inputs'].shape[1:])


def check_bn_recal_images(value) -> int:
    """``value`` if a valid ``--bn-recal-images``, else a ValueError."""
    note = ' (0: the stored BN statistics)'
    return _check_int(value, '--bn-recal-images ', 0, note)


def progress(total: int, desc: str, disable: bool = False):
    """A tqdm progress bar on stderr."""
    from tqdm import tqdm

    kw = dict(file=sys.stderr, dynamic_ncols=True, disable=disable)
    return tqdm(total=total, desc=desc, **kw)


def default_labels(checkpoints: Sequence[str]) -> List[str]:
    """``<folder>/<file stem>`` of each checkpoint (numbered if not unique)."""
    labels = []
    for path in checkpoints:
        parent = osp.basename(osp.dirname(osp.abspath(path)))
        stem = osp.splitext(osp.basename(path))[0]
        labels.append(f'{parent}/{stem}' if parent else stem)
    if len(set(labels)) < len(labels):
        labels = [f'{i + 1}:{label}' for i, label in enumerate(labels)]
    return labels


def check_checkpoints(
    checkpoints: Sequence[str], labels: Optional[Sequence[str]] = None
) -> Tuple[List[str], List[str]]:
    """``(checkpoints, labels)`` as lists, each checkpoint readable, one
    distinct label each.

    Raises:
        ValueError: No checkpoint, or not one distinct label each.
        CheckpointError: A checkpoint is missing or unreadable.
    """
    if isinstance(checkpoints, str):
        checkpoints = [checkpoints]
    checkpoints = [str(c) for c in checkpoints]
    if not checkpoints:
        raise ValueError('checkpoints=[] is invalid; allowed: one or more')
    for path in checkpoints:
        check_readable(path)
    if labels is None:
        return checkpoints, default_labels(checkpoints)
    if len(labels) != len(checkpoints) or len(set(labels)) < len(labels):
        raise ValueError(
            f'--labels {list(labels)} is invalid; allowed: one distinct '
            f'label per checkpoint ({len(checkpoints)} given)'
        )
    return checkpoints, list(labels)


def select_metric(metrics: Dict[str, float], key: Optional[str]) -> str:
    """``key``, or the evaluator's first metric when None.

    Raises:
        ValueError: No metrics, or ``key`` is not among them.
    """
    if not metrics:
        raise ValueError('the evaluator returned no metrics')
    if key is None:
        return next(iter(metrics))
    if key not in metrics:
        raise ValueError(
            f"--metric {key!r} is not among the evaluator's metrics; "
            f'allowed: {" | ".join(metrics)}'
        )
    return key


class Measure:
    """What a sweep measures of each member: ``begin(sweep, count)`` before
    a pass over ``count`` members, ``process(index, data)`` per batch and
    member in its context (run any forward on a copy of ``data``),
    ``results()`` after it: one dict per member, in order."""

    def begin(self, sweep: 'Sweep', count: int) -> None:
        self.sweep = sweep

    def process(self, index: int, data: dict) -> None:
        raise NotImplementedError

    def results(self) -> List[dict]:
        raise NotImplementedError


class TaskMetric(Measure):
    """The config's evaluator on ``model.val_step`` of a copy of each batch
    (as MMEngine's ``ValLoop``); results: its metrics as floats."""

    def begin(self, sweep: 'Sweep', count: int) -> None:
        super().begin(sweep, count)
        args = sweep.runner, sweep.cfg, sweep.split, sweep.loader.dataset
        self.evaluators = [build_evaluator(*args) for _ in range(count)]

    def process(self, index: int, data: dict) -> None:
        batch = copy.deepcopy(data)
        outputs = self.sweep.model.val_step(batch)
        self.evaluators[index].process(data_samples=outputs, data_batch=batch)

    def results(self) -> List[dict]:
        size = len(self.sweep.loader.dataset)
        return [
            {k: float(v) for k, v in e.evaluate(size).items()}
            for e in self.evaluators
        ]


@dataclass
class Sweep:
    """A config's model, built once, with what every member is measured on:
    the evaluation batches ``loader`` (or cached batches with a
    ``dataset``), the re-estimation batches ``recal`` (None: none) and
    ``recal_images`` per re-estimation (0: stored statistics, asked or no
    BN layer trains); ``has_bn``: whether training updates BN statistics.
    """

    cfg: Config
    runner: Runner
    elastic: ElasticDepth
    space: SubnetSpace
    split: str
    loader: Iterable
    recal: Optional[Iterable]
    recal_images: int
    has_bn: bool

    @property
    def model(self) -> nn.Module:
        return self.runner.model

    @property
    def arch(self) -> nn.Module:
        """The upstream architecture (inside an ST model)."""
        return unwrap_st(self.runner.model)

    def members(self, specs: Sequence, what: str = '--subnets') -> list:
        """The members ``specs`` name (:func:`mmst.subnet.resolve_subnets`)."""
        return resolve_subnets(specs, self.space, what)

    def load(self, checkpoint: str, strict: bool = True) -> dict:
        """Load ``checkpoint`` (:func:`load_weights`)."""
        return load_weights(self.runner, checkpoint, strict)

    @torch.no_grad()
    def run(
        self,
        members: Sequence[Optional[Subnet]],
        measures: Sequence[Measure],
        on_recal_batch: OnBatch = None,
        on_batch: OnBatch = None,
        timings: Optional[Dict[str, float]] = None,
    ) -> Tuple[List[Dict[str, dict]], int]:
        """Measure ``members`` (None: the main network) of the loaded
        weights, each with its BN statistics re-estimated (the main network
        and ``recal_images=0``: the stored ones): per member
        ``{type(measure).__name__: its result}``, and the re-estimation
        images used (0: none); the seconds of each step added to
        ``timings``' ``recal_s`` and ``eval_s`` if given."""
        t0 = time.perf_counter()
        subs = [m for m in members if m is not None]
        stats, used = [None] * len(members), 0
        if self.recal_images and subs:
            args = self.arch, self.recal, self.recal_images, subs
            found, used = member_bn_stats(*args, self.elastic, on_recal_batch)
            found = iter(found)
            stats = [None if m is None else next(found) for m in members]
        t1 = time.perf_counter()
        for measure in measures:
            measure.begin(self, len(members))

        def step(index: int, data: dict) -> None:
            for measure in measures:
                measure.process(index, data)

        model, elastic, loader = self.model, self.elastic, self.loader
        run_members(model, elastic, members, loader, step, stats, on_batch)
        found = [m.results() for m in measures]
        if timings is not None:
            timings['recal_s'] += t1 - t0
            timings['eval_s'] += time.perf_counter() - t1
        return [
            {type(m).__name__: r[i] for m, r in zip(measures, found)}
            for i in range(len(members))
        ], used


@contextmanager
def open_sweep(
    config: str,
    split: str = 'val',
    max_images: Optional[int] = None,
    cfg_options: Optional[dict] = None,
    space: Optional[str] = None,
    bn_recal_images: int = 2000,
    seed: int = 0,
    recal_loader: bool = True,
    eval_loader: bool = True,
) -> Iterator[Sweep]:
    """The :class:`Sweep` of ``config`` (its runner's logs in a temporary
    folder). ``space``: a preset; ``bn_recal_images``: images per
    re-estimation (0: stored statistics); ``seed``: of the re-estimation
    images; ``recal_loader=False``: the caller sets ``recal``;
    ``eval_loader=False``: no evaluation ``loader`` (None; its data set is
    not read); the others as :func:`load_config`. Raises ValueError: an
    invalid argument.
    """
    check_bn_recal_images(bn_recal_images)
    cfg = load_config(config, cfg_options, split, max_images)
    with tempfile.TemporaryDirectory(prefix='mmst_sweep_') as tmp:
        runner = build_runner(cfg, tmp)
        elastic, space_ = model_space(runner.model, space)
        has_bn = has_trainable_bn(unwrap_st(runner.model))
        images = bn_recal_images if has_bn else 0
        loader = None
        if eval_loader:
            loader = runner.build_dataloader(cfg.get(f'{split}_dataloader'))
        recal = (
            build_recal_loader(cfg, seed) if images and recal_loader else None
        )
        yield Sweep(
            cfg, runner, elastic, space_, split, loader, recal, images, has_bn
        )
