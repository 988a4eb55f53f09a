"""Evaluating sub-networks (the loafing view) and the validation loop that
reports them next to the main network."""

import copy
import logging
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.dist import get_world_size
from mmengine.evaluator import Evaluator
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import BaseLoop, ValLoop
from mmengine.runner.amp import autocast
from mmengine.runner.loops import _parse_losses, _update_losses

from mmst.models.algorithms.stimulative import elastic_of, unwrap_st
from mmst.registry import LOOPS
from mmst.settings import check_int, invalid, setting_prefix
from mmst.subnet import ElasticDepth, SubnetSpace, format_subnet
from mmst.subnet.prefix import full_subnet, member_passes
from mmst.subnet.space import (  # noqa: F401  (re-exported)
    NAMED_SUBNETS,
    Subnet,
    SubnetSpec,
    parse_subnet_specs,
    resolve_subnets,
)

from .bn_recal import (
    DEFAULT_RECAL_SEED,
    RecalLoader,
    build_recal_loader,
    check_recal_images,
    has_trainable_bn,
    member_bn_stats,
    preserved_bn_stats,
    recalibrate_bn,
)


@torch.no_grad()
def run_members(
    model: nn.Module,
    elastic: ElasticDepth,
    subnets: Sequence[Optional[Subnet]],
    dataloader: Iterable,
    step: Callable[[int, dict], None],
    stats: Optional[Sequence[Optional[dict]]] = None,
    on_batch: Optional[Callable[[int, int], None]] = None,
) -> None:
    """Run every member of ``subnets`` (None: the full network) on every
    batch of ``dataloader``, in one pass over the batches, the blocks that
    members' prefixes share computed once per batch
    (:class:`mmst.subnet.prefix.PrefixCache`): ``step(index, data)`` is
    called for each batch and member, inside ``elastic.activate(member)``
    and with the member's BN statistics in place, in eval mode, without
    autograd. A step runs whatever forward it needs on (a copy of)
    ``data``; every member gets exactly the values it gets when run alone.

    Args:
        model (nn.Module): The model (a plain upstream one or an ST model,
            possibly wrapped).
        elastic (ElasticDepth): The model's elastic backbone.
        subnets (Sequence): The members.
        dataloader (Iterable): The batches (iterated once).
        step (callable): ``step(index into subnets, data)``.
        stats (Sequence, optional): Per member ``{bn: (running_mean,
            running_var)}`` (from :func:`mmst.engine.member_bn_stats`) or
            None: the model's stored statistics. The model's own statistics
            are restored afterwards.
        on_batch (callable, optional): ``on_batch(done, total)`` after each
            batch.
    """
    members = [full_subnet(elastic) if s is None else s for s in subnets]
    stats = list(stats) if stats is not None else [None] * len(members)
    if len(stats) != len(members):
        raise ValueError(
            f'{len(stats)} BN statistics for {len(members)} members; give '
            'one entry (or None) per member'
        )
    arch = unwrap_st(model)
    touched = {bn for member in stats if member for bn in member}
    # members with their own statistics share prefixes with each other,
    # members with the stored ones likewise
    groups = ['stored' if own is None else 'own' for own in stats]
    model.eval()
    with preserved_bn_stats(arch):
        stored = {
            bn: (bn.running_mean.clone(), bn.running_var.clone())
            for bn in touched
        }

        def visit(idx: int, data) -> None:
            for bn, (mean, var) in (stats[idx] or stored).items():
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
            step(idx, data)

        member_passes(
            elastic,
            members,
            dataloader,
            visit,
            groups,
            on_batch,
            len(dataloader),
        )


def evaluate_members(
    model: nn.Module,
    elastic: ElasticDepth,
    subnets: Sequence[Optional[Subnet]],
    dataloader: Iterable,
    evaluators: Sequence[Evaluator],
    stats: Optional[Sequence[Optional[dict]]] = None,
    fp16: bool = False,
    on_batch: Optional[Callable[[int, int], None]] = None,
) -> List[Dict[str, float]]:
    """The task metrics of ``model`` run as each of ``subnets`` (None: the
    full network), each with its own ``evaluators`` entry, in one pass over
    ``dataloader`` (:func:`run_members`: ``model.val_step`` on a copy of
    each batch, as MMEngine's ``ValLoop`` runs it, under autocast when
    ``fp16``; losses the model returns are averaged and added as
    ``ValLoop`` adds them: ``<loss name>`` and ``val_loss``). ``stats``:
    per member its BN statistics or None (stored).

    Returns:
        list[dict]: The metrics of each member, in ``subnets``' order.

    Raises:
        ValueError: Not one evaluator (or stats entry) per member.
    """
    if len(evaluators) != len(subnets):
        raise ValueError(
            f'{len(evaluators)} evaluators for {len(subnets)} members; '
            'give one evaluator per member'
        )

    losses: List[dict] = [{} for _ in subnets]

    def step(idx: int, data: dict) -> None:
        batch = copy.deepcopy(data)
        with autocast(enabled=fp16):
            outputs = model.val_step(batch)
        outputs, losses[idx] = _update_losses(outputs, losses[idx])
        evaluators[idx].process(data_samples=outputs, data_batch=batch)

    run_members(model, elastic, subnets, dataloader, step, stats, on_batch)
    results = []
    for evaluator, member_losses in zip(evaluators, losses):
        metrics = evaluator.evaluate(len(dataloader.dataset))
        if member_losses:
            metrics.update(_parse_losses(member_losses, 'val'))
        results.append(metrics)
    return results


def evaluate_subnet(
    model: nn.Module,
    subnet: Optional[Subnet],
    elastic: ElasticDepth,
    dataloader: Iterable,
    evaluator: Evaluator,
    recal_loader: Optional[Iterable] = None,
    bn_recal_images: int = 0,
    fp16: bool = False,
) -> Dict[str, float]:
    """Metrics of ``model`` run as ``subnet`` (None: the full network),
    with BN statistics re-estimated for it on ``bn_recal_images`` images of
    ``recal_loader`` first (0: the stored statistics; see
    :func:`member_bn_stats`: the count is the total over all ranks): one
    member of :func:`evaluate_members`. The model's own BN statistics are
    restored afterwards.

    Raises:
        ValueError: ``bn_recal_images > 0`` without ``recal_loader``, or
            more images asked than ``recal_loader`` provides.
    """
    stats = None
    if bn_recal_images:
        if recal_loader is None:
            raise ValueError(
                f'bn_recal_images={bn_recal_images} needs a dataloader '
                'of training images (recal_loader, see '
                'mmst.engine.build_recal_loader); got None'
            )
        stats, _ = member_bn_stats(
            unwrap_st(model), recal_loader, bn_recal_images, [subnet], elastic
        )
    return evaluate_members(
        model, elastic, [subnet], dataloader, [evaluator], stats, fp16
    )[0]


def _state_fingerprint(model: nn.Module) -> torch.Tensor:
    """float64 sums of every parameter and BN running statistic of
    ``model``: changes when the weights or the statistics change."""
    sums = [p.detach().double().sum() for p in model.parameters()]
    sums += [
        b.detach().double().sum()
        for name, b in model.named_buffers()
        if name.endswith(('running_mean', 'running_var'))
    ]
    if not sums:
        return torch.zeros(0, dtype=torch.float64)
    return torch.stack(sums).cpu()


#: Images for the main network's statistics when bn_recal_images=0.
MAIN_RECAL_IMAGES = 2000


def check_subnet_val_args(
    subnets: Sequence[SubnetSpec] = ('smallest', 'largest'),
    bn_recal_images: int = 2000,
    recal_main: Optional[bool] = None,
    fp16: bool = False,
    recal_seed: int = DEFAULT_RECAL_SEED,
    space: Optional[SubnetSpace] = None,
) -> List[SubnetSpec]:
    """The checks of :class:`SubnetValLoop`'s arguments, without a runner:
    the loop runs them when it is built, :func:`mmst.apis.check_config`
    before anything is written to the work dir.

    Args:
        subnets, bn_recal_images, recal_main, fp16, recal_seed: As
            :class:`SubnetValLoop`.
        space (SubnetSpace, optional): The model's space; given, the
            ``subnets`` specs are resolved in it (a depth list must fit the
            backbone's stages).

    Returns:
        list: The parsed ``subnets`` specs
        (:func:`mmst.subnet.parse_subnet_specs`).

    Raises:
        mmst.settings.SettingError: A ValueError naming the key relative
            to the loop's config (``bn_recal_images=-1 is invalid; allowed:
            an integer >= 0``); integers refuse bools.
    """
    check_int('bn_recal_images', bn_recal_images, 0)
    check_int('recal_seed', recal_seed)
    if recal_main is not None and not isinstance(recal_main, bool):
        raise invalid('recal_main', recal_main, 'True | False | None')
    if not isinstance(fp16, bool):
        raise invalid('fp16', fp16, 'True | False')
    # One parser for the loop and the tools: a bad entry fails here,
    # with the key, the value and the allowed forms.
    specs = parse_subnet_specs(subnets, 'subnets', allow_empty=True)
    if space is not None:
        resolve_subnets(specs, space, 'subnets')
    return specs


def recal_images_needed(bn_recal_images: int, recal_main: bool) -> int:
    """The most training images one BN re-estimation of the loop asks for
    (each sub-network's: ``bn_recal_images``; the main network's when
    ``recal_main``: ``bn_recal_images`` or :data:`MAIN_RECAL_IMAGES`); 0
    when it re-estimates nothing."""
    asked = [bn_recal_images] if bn_recal_images else []
    if recal_main:
        asked.append(bn_recal_images or MAIN_RECAL_IMAGES)
    return max(asked, default=0)


def recal_main_default(model: nn.Module, recal_main: Optional[bool]) -> bool:
    """``recal_main``, or when None whether the (wrapped) ST model has
    ``bn_stats='shared'``."""
    if recal_main is None:
        module = getattr(model, 'module', model)
        return getattr(module, 'bn_stats', 'main') == 'shared'
    return bool(recal_main)


@LOOPS.register_module()
class SubnetValLoop(ValLoop):
    """Validation of the main network and of a list of sub-networks.

    Sub-network metrics are logged as ``subnet[k1,k2,...]/<metric>`` next
    to the main network's. Each sub-network is evaluated with its own BN
    statistics, re-estimated on ``bn_recal_images`` training images (with
    the main network's statistics the numbers would measure BN mismatch,
    not loafing); the main network's statistics are left as they were.

    The re-estimation images come from the config's ``train_dataloader``
    (dataset, pipeline, batch size), through a loader of their own built
    once at first use (:func:`mmst.engine.build_recal_loader`, seeded with
    ``recal_seed``): the same images with the same augmentations at every
    validation, the training loop's loader and random sequence untouched,
    and no training loop needed (``runner.val()``). In a distributed run
    ``bn_recal_images`` is the total over all ranks and every rank ends
    with the same statistics.

    The arguments are checked when the loop is built, by
    :func:`check_subnet_val_args` (which :func:`mmst.apis.check_config`
    runs before the Runner is built): the errors name ``val_cfg.<key>``,
    integers refuse bools.

    When the ST model's ``bn_stats='shared'`` (the authors' recipe), the
    main network's statistics are re-estimated too, permanently, on
    ``bn_recal_images`` images (2000 when 0). The loop then registers a
    :class:`SharedBNRecalHook`, which re-estimates them also right before a
    ``CheckpointHook`` saves, so that ``epoch_N.pth`` / ``iter_N.pth`` hold
    the statistics the validation at that point uses (``tools/test.py`` on
    the checkpoint reproduces the logged metric); the validation that
    follows finds them current and does not repeat the work.

    When no BN layer of the model trains (every BN in eval mode under
    ``model.train()``: a backbone's ``norm_eval=True``, as mmdet's
    detectors, frozen stages, or a LayerNorm-only model), there are no
    statistics to re-estimate: ``bn_recal_images`` and ``recal_main`` are
    not used, no training image is read (so neither the size of the
    training set nor a ``train_dataloader`` is required), and the log says
    so once, when the loop is built.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): Validation dataloader.
        evaluator (Evaluator | dict | list): Validation evaluator.
        subnets (Sequence): Which sub-networks: ``'smallest'``,
            ``'largest'``, ``'full'``, ``'all'`` or depth lists (``[1, 2,
            3]`` or ``'1,2,3'``), resolved in the ST model's space (a plain
            model: the default space of its backbone); checked when the
            loop is built (:func:`mmst.subnet.parse_subnet_specs`, the
            parser of the analysis tools). Defaults to ``('smallest',
            'largest')``.
        bn_recal_images (int): Training images (in total over all ranks)
            for each sub-network's BN statistics; 0 evaluates with the main
            network's statistics (shows BN mismatch). Defaults to 2000.
        recal_main (bool, optional): Re-estimate the main network's BN
            statistics (permanently) before validating it and before saving
            checkpoints: needed when the ST model's ``bn_stats='shared'``.
            None: exactly in that case.
        fp16 (bool): Validate under autocast. Defaults to False.
        recal_seed (int): Seed of the re-estimation images and
            augmentations. Defaults to 0 (as ``loafing.py --seed``).
    """

    #: Images for the main network's statistics when bn_recal_images=0.
    MAIN_RECAL_IMAGES = MAIN_RECAL_IMAGES
    #: The config key of the loop, for error messages.
    CFG_KEY = 'val_cfg'

    def __init__(
        self,
        runner,
        dataloader,
        evaluator,
        subnets: Sequence[SubnetSpec] = ('smallest', 'largest'),
        bn_recal_images: int = 2000,
        recal_main: Optional[bool] = None,
        fp16: bool = False,
        recal_seed: int = DEFAULT_RECAL_SEED,
    ) -> None:
        with setting_prefix(self.CFG_KEY):
            # Validate the specs now, not at the first validation.
            self.subnet_specs = check_subnet_val_args(
                subnets,
                bn_recal_images,
                recal_main,
                fp16,
                recal_seed,
                space=elastic_of(runner.model)[1],
            )
        super().__init__(runner, dataloader, evaluator, fp16)
        self.bn_recal_images = bn_recal_images
        self.recal_seed = recal_seed
        self.recal_main = recal_main_default(runner.model, recal_main)
        # No BN layer trains (norm_eval=True, frozen stages, LayerNorm
        # only): no statistics to re-estimate, so no images are needed.
        self.bn_trains = has_trainable_bn(unwrap_st(runner.model))
        if not self.bn_trains:
            self._log_no_recal()
            self.bn_recal_images, self.recal_main = 0, False
        self._recal_loader: Optional[RecalLoader] = None
        # (training iterations done, _state_fingerprint) right after the
        # latest main-network re-estimation.
        self._main_recal_iter: Optional[int] = None
        self._main_recal_state: Optional[torch.Tensor] = None
        hooks = [SubnetMetricsHook]
        if self.recal_main:
            hooks.append(SharedBNRecalHook)
        for hook in hooks:
            if not any(
                isinstance(h, hook) and h.loop is self for h in runner.hooks
            ):
                runner.register_hook(hook(self))
        self._check_recal_images()

    def _log_no_recal(self) -> None:
        """Say once, when the loop is built, that no BN statistics are
        re-estimated because no BN layer of the model trains (only when
        the configuration asked for re-estimation)."""
        asked = recal_images_needed(self.bn_recal_images, self.recal_main)
        if not asked:
            return
        print_log(
            f'{self.CFG_KEY}: BN re-estimation skipped: no BN layer of the '
            'model trains (norm_eval=True, frozen stages or no BN '
            'layers), so every sub-network is evaluated with the stored '
            'statistics it trained with; '
            f'bn_recal_images={self.bn_recal_images}'
            + (' and recal_main=True' if self.recal_main else '')
            + ' read no training images (none are needed)',
            'current',
            logging.INFO,
        )

    def _check_recal_images(self) -> None:
        """Refuse, before any training, a ``bn_recal_images`` that the
        training data cannot provide (builds the re-estimation loader,
        which the first validation would build anyway)."""
        asked = recal_images_needed(self.bn_recal_images, self.recal_main)
        if not asked or not self.runner.cfg.get('train_dataloader'):
            return  # nothing to check, or the clear error comes at val
        param = next(self.runner.model.parameters(), None)
        device = param.device if param is not None else torch.device('cpu')
        loader = self.recal_loader()
        with setting_prefix(self.CFG_KEY):
            check_recal_images(loader, asked, device)

    @property
    def main_recal_images(self) -> int:
        """Images for the main network's statistics."""
        return self.bn_recal_images or self.MAIN_RECAL_IMAGES

    def recal_loader(self) -> RecalLoader:
        """The re-estimation loader, built from the config's
        ``train_dataloader`` at the first call and cached.

        Raises:
            ValueError: The config has no ``train_dataloader``.
        """
        if self._recal_loader is None:
            loader_cfg = self.runner.cfg.get('train_dataloader')
            if not loader_cfg and isinstance(
                self.runner._train_dataloader, dict
            ):
                loader_cfg = self.runner._train_dataloader
            if not loader_cfg:
                needs = []
                if self.bn_recal_images:
                    needs.append(
                        f'bn_recal_images={self.bn_recal_images} '
                        "(each sub-network's statistics)"
                    )
                if self.recal_main:
                    needs.append(
                        "recal_main (the main network's statistics, "
                        "bn_stats='shared')"
                    )
                avoid = 'bn_recal_images=0' + (
                    ' and recal_main=False' if self.recal_main else ''
                )
                raise ValueError(
                    'SubnetValLoop re-estimates BN statistics on training '
                    f'images ({" and ".join(needs)}), but the config has '
                    'no train_dataloader; set train_dataloader (its '
                    'dataset, pipeline and batch_size are used), or set '
                    f'val_cfg {avoid} to validate without re-estimation'
                )
            self._recal_loader = build_recal_loader(
                loader_cfg, self.recal_seed
            )
        return self._recal_loader

    def _trained_iters(self) -> Optional[int]:
        """Training iterations done, None without a training loop (the
        runner's ``iter`` would build one)."""
        loop = self.runner._train_loop
        return loop.iter if isinstance(loop, BaseLoop) else None

    def main_stats_current(self, trained_iters: Optional[int]) -> bool:
        """Whether the main network's statistics are those the latest
        re-estimation wrote, at ``trained_iters`` training iterations, with
        the same weights."""
        if trained_iters is None or trained_iters != self._main_recal_iter:
            return False
        state = _state_fingerprint(unwrap_st(self.runner.model))
        return torch.equal(state, self._main_recal_state)

    def recalibrate_main(
        self, trained_iters: Optional[int], purpose: str
    ) -> bool:
        """Re-estimate the main network's BN statistics (permanently),
        unless they are current (:meth:`main_stats_current`). Re-estimation
        is deterministic (same images, same augmentations), so skipping it
        gives the statistics it would give. Call it on every rank.

        Args:
            trained_iters (int, optional): Training iterations done (None:
                outside training; always re-estimates).
            purpose (str): For the log line.

        Returns:
            bool: Whether it re-estimated.
        """
        if self.main_stats_current(trained_iters):
            return False
        arch = unwrap_st(self.runner.model)
        used = recalibrate_bn(
            arch, self.recal_loader(), self.main_recal_images
        )
        self._main_recal_iter = trained_iters
        self._main_recal_state = _state_fingerprint(arch)
        print_log(
            f're-estimated the main network BN statistics on {used} '
            f'training images {purpose}',
            'current',
            logging.INFO,
        )
        return True

    def evaluate_subnets(self) -> Dict[str, float]:
        """The metrics of every sub-network of ``subnets``, each with its
        own re-estimated BN statistics (:func:`member_bn_stats`), in one
        pass over the validation batches (:func:`evaluate_members`), as
        ``subnet[k1,k2,...]/<metric>``. Call it on every rank."""
        model = self.runner.model
        elastic, space = elastic_of(model)
        subnets = resolve_subnets(self.subnet_specs, space)
        if not subnets:
            return {}
        stats = None
        if self.bn_recal_images:
            stats, _ = member_bn_stats(
                unwrap_st(model),
                self.recal_loader(),
                self.bn_recal_images,
                subnets,
                elastic,
            )
        evaluators = [copy.deepcopy(self.evaluator) for _ in subnets]
        all_metrics = evaluate_members(
            model,
            elastic,
            subnets,
            self.dataloader,
            evaluators,
            stats,
            self.fp16,
        )
        results: Dict[str, float] = {}
        for subnet, metrics in zip(subnets, all_metrics):
            name = f'subnet{format_subnet(subnet)}'
            results.update({f'{name}/{k}': v for k, v in metrics.items()})
        return results


class SubnetMetricsHook(Hook):
    """Adds the sub-networks' metrics of a :class:`SubnetValLoop` to the
    main network's, which MMEngine's ``ValLoop.run`` computed (its
    ``val_loss`` included), before the other ``after_val_epoch`` hooks see
    them (priority ``HIGHEST``: before ``RuntimeInfoHook`` records them in
    the message hub, ``EMAHook`` swaps its weights back, ``LoggerHook``
    logs and ``CheckpointHook`` picks the best); registered by the loop
    itself.

    Args:
        loop (SubnetValLoop): The loop whose sub-networks are evaluated.
    """

    priority = 'HIGHEST'

    def __init__(self, loop: 'SubnetValLoop') -> None:
        self.loop = loop

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        if runner.val_loop is self.loop and metrics is not None:
            metrics.update(self.loop.evaluate_subnets())


class SharedBNRecalHook(Hook):
    """Makes checkpoints carry validated BN statistics when the ST model's
    ``bn_stats='shared'``; registered by :class:`SubnetValLoop` itself
    (a config needs nothing).

    MMEngine's ``CheckpointHook`` saves in ``after_train_epoch`` /
    ``after_train_iter``, before the validation that re-estimates the main
    network's statistics; and ``Runner.save_checkpoint`` (with its
    ``before_save_checkpoint`` hooks) runs on rank 0 only, where the
    all-ranks re-estimation cannot run. So this hook (priority ``LOW``,
    before ``CheckpointHook``'s ``VERY_LOW``) re-estimates on every rank in
    ``after_train_epoch`` / ``after_train_iter`` whenever a
    ``CheckpointHook`` is about to save, and checks in
    ``before_save_checkpoint`` that the statistics being saved are current.
    A checkpoint saved at any other point (e.g. by another hook) gets them
    re-estimated there in a single-process run; in a distributed run a
    warning says that its BN statistics were not re-estimated.

    Args:
        loop (SubnetValLoop): The loop that re-estimates.
    """

    priority = 'LOW'

    def __init__(self, loop: SubnetValLoop) -> None:
        self.loop = loop

    @staticmethod
    def _checkpoint_due(runner, by_epoch: bool) -> bool:
        """Whether a ``CheckpointHook`` saves in this
        ``after_train_epoch`` (``by_epoch``) / ``after_train_iter``."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook):
                continue
            if hook.by_epoch != by_epoch:
                continue
            if by_epoch:
                due = hook.every_n_epochs(
                    runner, hook.interval, hook.save_begin
                ) or (hook.save_last and hook.is_last_train_epoch(runner))
            else:
                due = hook.every_n_train_iters(
                    runner, hook.interval, hook.save_begin
                ) or (hook.save_last and hook.is_last_train_iter(runner))
            if due:
                return True
        return False

    def after_train_iter(
        self, runner, batch_idx: int, data_batch=None, outputs=None
    ) -> None:
        if self._checkpoint_due(runner, by_epoch=False):
            self.loop.recalibrate_main(
                runner.iter + 1, 'before saving the checkpoint'
            )

    def before_val_epoch(self, runner) -> None:
        # after the NORMAL hooks (EMAHook puts its weights in place there)
        if runner.val_loop is self.loop:
            self.loop.recalibrate_main(
                self.loop._trained_iters(), 'for validation'
            )

    def after_train_epoch(self, runner) -> None:
        if self._checkpoint_due(runner, by_epoch=True):
            self.loop.recalibrate_main(
                runner.iter, 'before saving the checkpoint'
            )

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        trained_iters = checkpoint.get('meta', {}).get('iter')
        if self.loop.main_stats_current(trained_iters):
            return
        if get_world_size() > 1:
            print_log(
                f'the checkpoint at iteration {trained_iters} holds BN '
                'statistics that were not re-estimated for its weights '
                "(bn_stats='shared'): only checkpoints saved by "
                'CheckpointHook, or after a validation, are re-estimated '
                'on all ranks; re-estimate before testing it (e.g. '
                'runner.val() with this SubnetValLoop)',
                'current',
                logging.WARNING,
            )
            return
        self.loop.recalibrate_main(
            trained_iters, 'before saving the checkpoint'
        )
        model = runner.model
        model = model.module if is_model_wrapper(model) else model
        fresh = model.state_dict()
        state = checkpoint['state_dict']
        for key in state:
            if key.endswith(('running_mean', 'running_var')) and key in fresh:
                state[key] = fresh[key].detach().cpu()
