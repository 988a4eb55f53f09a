"""One member sweep: a config's model built once, each checkpoint loaded
in turn, every member of its sub-network space run on the same evaluation
batches with its own re-estimated BN statistics, and handed to pluggable
measures.

The loafing table (:func:`mmst.analysis.run_loafing`), the logit magnitude
(:func:`mmst.analysis.run_logit_magnitude`) and the depth menu
(:func:`mmst.analysis.build_menu`) are users of it; ``SubnetValLoop`` runs
the same member evaluation on the live model
(:func:`mmst.engine.evaluate_members`). What a sweep does per checkpoint:

1. BN statistics of every member (``None``, the main network, keeps its
   stored ones) re-estimated on ``bn_recal_images`` images of the seeded
   re-estimation loader, in one pass with shared prefixes
   (:func:`mmst.engine.member_bn_stats`);
2. one pass over the evaluation batches, every member on every batch with
   its statistics, shared prefixes computed once
   (:func:`mmst.engine.run_members`), each :class:`Measure` given each
   member's batch.

A measure (``docs/analysis.md``, "Adding a measure") has ``begin(sweep,
count)``, ``process(index, data)`` (inside the member's context: run any
forward on a copy of ``data``) and ``results()`` (one dict per member).
Costs that do not depend on the weights (parameters, FLOPs, latency) are
computed once per member by the users (:mod:`mmst.analysis.cost`,
:mod:`mmst.analysis.latency`).
"""

import copy
import os.path as osp
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import (
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.runner import Runner

from mmst.converters.checkpoint_io import check_readable
from mmst.engine import member_bn_stats, run_members
from mmst.engine.bn_recal import has_trainable_bn
from mmst.models.algorithms.stimulative import unwrap_st
from mmst.subnet import ElasticDepth, SubnetSpace, resolve_subnets
from mmst.subnet.space import Subnet

from .runner import (
    build_evaluator,
    build_recal_loader,
    build_runner,
    check_bn_recal_images,
    load_config,
    load_weights,
    model_space,
)

OnBatch = Optional[Callable[[int, int], None]]


def default_labels(checkpoints: Sequence[str]) -> List[str]:
    """``<folder>/<file stem>`` of each checkpoint (numbered when two
    coincide)."""
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
    """The checkpoints (each readable, checked before anything is built)
    and one distinct label each.

    Returns:
        tuple: ``(checkpoints, labels)`` as lists.

    Raises:
        ValueError: No checkpoint, or ``labels`` not one distinct label per
            checkpoint.
        CheckpointError: A checkpoint is unreadable (a missing file is also
            a ``FileNotFoundError``).
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
    """What a sweep measures of each member on the evaluation batches.

    ``begin(sweep, count)`` before a pass over ``count`` members;
    ``process(index, data)`` for each batch and member, inside the member's
    context (its depth and BN statistics in place, eval mode, no autograd);
    ``results()`` after the pass: one dict per member, in order.
    """

    def begin(self, sweep: 'Sweep', count: int) -> None:
        self.sweep = sweep

    def process(self, index: int, data: dict) -> None:
        raise NotImplementedError

    def results(self) -> List[dict]:
        raise NotImplementedError


class TaskMetric(Measure):
    """The task metric of the config's evaluator (``model.val_step`` on a
    copy of each batch, as MMEngine's ``ValLoop`` runs it); results: the
    evaluator's metrics as floats."""

    def begin(self, sweep: 'Sweep', count: int) -> None:
        super().begin(sweep, count)
        self.evaluators = [sweep.new_evaluator() for _ in range(count)]

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
    """A config's model, built once, with what every member is measured on.

    Attributes:
        cfg (Config): The config (``split`` images limited, task library
            registered).
        runner (Runner): Its runner (as ``tools/test.py`` builds it).
        elastic (ElasticDepth): The elastic backbone.
        space (SubnetSpace): The members' space.
        split (str): ``'val'`` or ``'test'``.
        loader (Iterable): The evaluation batches (a dataloader, or cached
            batches with a ``dataset``).
        recal (Iterable, optional): The re-estimation batches (the seeded
            loader of :func:`mmst.analysis.build_recal_loader`, or cached
            batches); None when nothing is re-estimated.
        recal_images (int): Images per re-estimation; 0: stored statistics
            (asked, or no BN layer trains).
        has_bn (bool): Whether training updates any BN statistics.
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
        """The members ``specs`` name in the space
        (:func:`mmst.subnet.resolve_subnets`)."""
        return resolve_subnets(specs, self.space, what)

    def new_evaluator(self):
        """A new evaluator of the split (its ``dataset_meta`` set)."""
        return build_evaluator(
            self.runner, self.cfg, self.split, self.loader.dataset
        )

    def load(self, checkpoint: str, strict: bool = True) -> dict:
        """Load ``checkpoint`` (:func:`mmst.analysis.load_weights`)."""
        return load_weights(self.runner, checkpoint, strict)

    def bn_stats(
        self, members: Sequence[Optional[Subnet]], on_batch: OnBatch = None
    ) -> Tuple[List[Optional[dict]], int]:
        """Per member its re-estimated BN statistics (None for the main
        network, ``None`` in ``members``, and for every member when
        ``recal_images`` is 0) and the images used."""
        stats: List[Optional[dict]] = [None] * len(members)
        subs = [i for i, m in enumerate(members) if m is not None]
        if not self.recal_images or not subs:
            return stats, 0
        found, used = member_bn_stats(
            self.arch,
            self.recal,
            self.recal_images,
            [members[i] for i in subs],
            self.elastic,
            on_batch,
        )
        for i, member in zip(subs, found):
            stats[i] = member
        return stats, used

    @torch.no_grad()
    def run(
        self,
        members: Sequence[Optional[Subnet]],
        measures: Sequence[Measure],
        on_recal_batch: OnBatch = None,
        on_batch: OnBatch = None,
    ) -> Tuple[List[Dict[str, dict]], int]:
        """Measure ``members`` (None: the main network, stored BN
        statistics) of the loaded weights.

        Returns:
            tuple: per member ``{type(measure).__name__: its result}``, and
            the re-estimation images used (0: none).
        """
        stats, used = self.bn_stats(members, on_recal_batch)
        for measure in measures:
            measure.begin(self, len(members))

        def step(index: int, data: dict) -> None:
            for measure in measures:
                measure.process(index, data)

        run_members(
            self.model,
            self.elastic,
            members,
            self.loader,
            step,
            stats,
            on_batch,
        )
        found = [m.results() for m in measures]
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
) -> Iterator[Sweep]:
    """Build the :class:`Sweep` of ``config`` (its runner's logs in a
    temporary folder, removed on exit).

    Args:
        config (str): Config file (an mmst ST config or an upstream one).
        split (str): ``'val'`` or ``'test'``.
        max_images (int, optional): Evaluate on the first N images.
        cfg_options (dict, optional): Config overrides.
        space (str, optional): Space preset overriding the model's space.
        bn_recal_images (int): Images per re-estimation (0: stored
            statistics; set to 0 when no BN layer trains).
        seed (int): Seed of the re-estimation images and augmentations.
        recal_loader (bool): Build the re-estimation loader (False: the
            caller sets ``recal`` itself, e.g. cached batches).

    Raises:
        ValueError: An invalid argument (the message names it).
    """
    check_bn_recal_images(bn_recal_images)
    cfg = load_config(config, cfg_options, split, max_images)
    with tempfile.TemporaryDirectory(prefix='mmst_sweep_') as tmp:
        runner = build_runner(cfg, tmp)
        elastic, space_ = model_space(runner.model, space)
        has_bn = has_trainable_bn(unwrap_st(runner.model))
        recal_images = bn_recal_images if has_bn else 0
        loader = runner.build_dataloader(cfg.get(f'{split}_dataloader'))
        recal = None
        if recal_images and recal_loader:
            recal = build_recal_loader(cfg, seed)
        yield Sweep(
            cfg=cfg,
            runner=runner,
            elastic=elastic,
            space=space_,
            split=split,
            loader=loader,
            recal=recal,
            recal_images=recal_images,
            has_bn=has_bn,
        )
