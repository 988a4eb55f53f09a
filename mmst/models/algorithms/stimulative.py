"""The Stimulative Training step, for any upstream model."""

import random
import weakref
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from typing import (
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.dist import broadcast_object_list
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
from torch.nn.modules.batchnorm import _BatchNorm

from mmst.registry import MODELS
from mmst.settings import SettingError, check_int, invalid, setting_prefix
from mmst.subnet import (
    ElasticDepth,
    InputSizeSampler,
    SubnetSpace,
    subnet_depths,
)
from mmst.subnet.discovery import check_smaller_inputs, input_channels
from mmst.subnet.space import Subnet

from ..tasks import build_task, task_class

BN_STATS_MODES = ('main', 'shared')
SUBNET_LOSSES = ('kl', 'task')
# Message-hub key of the rank-independent seed of the sub-network sequence.
SEQUENCE_SEED_KEY = 'mmst_subnet_seed'
#: Keys of ``subnet_schedule`` and their defaults.
SCHEDULE_DEFAULTS = dict(begin=0, warmup=0, by_epoch=False)


def subnet_weight(step: int, begin: int = 0, warmup: int = 0) -> float:
    """The weight of the sub-network losses at ``step`` (an iteration or
    an epoch, counted from 0 as MMEngine does) under
    ``subnet_schedule=dict(begin=begin, warmup=warmup)``.

    0 before ``begin`` (no sub-network pass runs); from ``begin`` on
    ``min(1, (step - begin + 1) / (warmup + 1))``: a linear rise over the
    ``warmup`` steps from ``begin``, ``1 / (warmup + 1)`` at ``begin``,
    then 1 from ``begin + warmup`` on (``warmup=0``: 1 from ``begin``).
    No step with passes has weight 0.

    Args:
        step (int): The iteration or epoch, >= 0.
        begin (int): The first step with sub-network passes.
        warmup (int): Steps over which the weight rises to 1.

    Returns:
        float: The weight, in [0, 1].
    """
    if step < begin:
        return 0.0
    return min(1.0, (step - begin + 1) / (warmup + 1))


@contextmanager
def freeze_bn_running_stats(model: nn.Module) -> Iterator[None]:
    """Normalise with batch statistics but leave the running statistics
    (and ``num_batches_tracked``) untouched, for sub-network passes. The
    forward and backward are bit-identical to those of a normal pass."""
    changed = [
        m
        for m in model.modules()
        if isinstance(m, _BatchNorm) and m.training and m.track_running_stats
    ]
    for m in changed:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in changed:
            m.track_running_stats = True


def _resized_note(inputs: torch.Tensor, size: int) -> str:
    return (
        f'mmst: this sub-network pass ran on inputs resized by input_resize '
        f'from {tuple(inputs.shape[-2:])} to a shorter side of {size} px; '
        'a backbone that refuses smaller inputs is listed in the "smaller '
        'inputs" column of docs/backbones.md (input_resize=None trains '
        'sub-networks at the main input size)'
    )


def _not_counted(subnet, size):
    return nullcontext()


@contextmanager
def one_iteration(
    optim_wrapper: OptimWrapper,
) -> Iterator[Callable[[torch.Tensor], None]]:
    """A ``backward(loss)`` for the N + 1 passes of one ST iteration, which
    all count as ONE iteration of ``optim_wrapper``.

    ``OptimWrapper.backward`` advances the wrapper's iteration counter
    (``_inner_count``), from which it also derives the loss factor of
    gradient accumulation (``scale_loss``) and when an accumulation window
    ends (``should_update``). MMEngine offers no public way to run several
    backward passes in one iteration, so the counter is held at this
    iteration's value for every pass and advanced once at the end.
    """
    count = optim_wrapper._inner_count

    def backward(loss: torch.Tensor) -> None:
        optim_wrapper._inner_count = count
        optim_wrapper.backward(optim_wrapper.scale_loss(loss))

    yield backward
    optim_wrapper._inner_count = count + 1


@MODELS.register_module()
class StimulativeTraining(BaseModel):
    """Stimulative Training (ST / ST++) of an upstream model.

    Each iteration: the main (full) network's own loss is backwarded; then
    ``num_subnets`` sub-networks, each keeping the first blocks of every
    residual stage of the backbone (sampled from ``space``) and seeing a
    randomly down-scaled copy of the batch, are trained against the main
    network's detached logits (``subnet_loss='kl'``) or the task's ground
    truth (``'task'``), each backwarded at once; then one optimizer step.
    ``num_subnets=0`` is conventional training through the same code.

    Checkpoints hold the architecture's own keys (no ``architecture.``
    prefix), so upstream configs and tools load them directly.

    Args:
        architecture (dict | BaseModel): The upstream model (an mmpretrain
            classifier, mmdet detector, mmseg segmentor or mmpose
            estimator), built in the caller's default scope.
        num_subnets (int): N sub-network passes per iteration (ST: 1,
            ST++: 6). Defaults to 1.
        space (dict): ``SubnetSpace`` arguments: ``depths`` (a preset name
            or per-stage depth lists) and ``mode`` (``'ordered'`` or
            ``'stochastic'``). Defaults to ``dict(depths='default')``.
        elastic_stages (list, optional): Explicit residual stages of the
            backbone (see :func:`mmst.subnet.find_stages`).
        input_resize (dict, optional): ``InputSizeSampler`` arguments
            (``ratio_range`` or ``size_range``) for random smaller
            sub-network inputs; None keeps the input size.
        subnet_loss (str): ``'kl'`` (to the main network's logits;
            classification) or ``'task'`` (ground-truth losses).
            Defaults to ``'kl'`` for classifiers, else ``'task'``.
        distill (dict): The sub-network loss of ``subnet_loss='kl'``: any
            registered loss called as ``loss(student, teacher)`` on the
            normalised logits; ``type`` defaults to
            ``'mmst.KLDivergenceLoss'`` (``temperature``, ``loss_weight``).
        logit_norm (str, optional): ``'none' | 'layernorm' | 'l2'``:
            normalisation of the logits of the main CE, the teacher and the
            students. None (the default): ``'layernorm'`` when sub-networks
            learn the main network's logits (``subnet_loss='kl'``,
            ``num_subnets > 0``: ST++'s "KL-", direction only), else
            ``'none'`` (task losses, or conventional training), so one
            config is right for classifiers and for dense tasks. ST
            (NeurIPS'22, plain KL) sets ``'none'``.
        logit_amplitude (float): Scale after normalisation.
        normalize_main_logits (bool): Apply ``logit_norm`` to the main CE
            too (the authors' code). With few classes and short schedules
            the main network learns far slower on normalised logits
            (``docs/method.md``); False normalises only the teacher and the
            students. Defaults to True.
        bn_stats (str): ``'main'``: running BN statistics are updated by
            main-network passes only; ``'shared'``: sub-network passes
            update them too (the authors' code; then re-estimate before
            validation, see ``mmst.SubnetValLoop``). Defaults to ``'main'``.
        task (str | dict, optional): The task (``mmst.registry.TASKS``): a
            registered name (``'classification'``, ``'detection'``,
            ``'segmentation'``, ``'pose'`` or one registered by another
            package) or a config dict; None infers it from the model.
        seed (int, optional): Seed of the sub-network / input-size sequence;
            None uses the runner's seed.
        subnet_schedule (dict, optional): When and how strongly the
            sub-networks join: ``begin`` (int >= 0, default 0), the first
            iteration (0-based) with sub-network passes, before which the
            step is the main pass alone (the authors'
            ``--sampling_begin_epoch``); ``warmup`` (int >= 0, default 0):
            the sub-network losses are multiplied by
            :func:`subnet_weight` (a linear rise to 1 over ``warmup``
            iterations from ``begin``) before their backward;
            ``by_epoch`` (bool, default False): count ``begin`` and
            ``warmup`` in epochs (an epoch-based ``train_cfg``; the weight
            is constant within an epoch). The iteration / epoch is the
            runner's (its message hub), so every rank and a resumed run
            agree. None (the default, the paper's setting): passes from the
            first iteration at weight 1. Inert with ``num_subnets=0``.
        data_preprocessor (dict, optional): Used as the architecture's data
            preprocessor when its config has none (the Runner passes a
            config's top-level ``data_preprocessor`` here).
        init_cfg (dict, optional): Initialisation config.

    Raises:
        mmst.settings.SettingError: A ValueError naming the setting by its
            dotted key relative to this model's config (``num_subnets``,
            ``distill.temperature``, ``space.depths[0]``,
            ``input_resize.size_range``; ``mmst.apis.check_config`` puts
            ``model.`` in front), its value and what is allowed; integer
            settings refuse bools. An upstream error while building
            ``architecture`` or ``distill`` gets a note naming it.
    """

    def __init__(
        self,
        architecture: Union[dict, BaseModel],
        num_subnets: int = 1,
        space: Optional[dict] = None,
        elastic_stages: Optional[Sequence] = None,
        input_resize: Optional[dict] = None,
        subnet_loss: Optional[str] = None,
        distill: Optional[dict] = None,
        logit_norm: Optional[str] = None,
        logit_amplitude: float = 1.0,
        normalize_main_logits: bool = True,
        bn_stats: str = 'main',
        task: Union[None, str, dict] = None,
        seed: Optional[int] = None,
        subnet_schedule: Optional[dict] = None,
        data_preprocessor: Optional[dict] = None,
        init_cfg: Optional[dict] = None,
    ) -> None:
        if isinstance(architecture, dict):
            # The Runner puts a config's top-level data_preprocessor into the
            # model config: it belongs to the architecture, as it would
            # without ST.
            if data_preprocessor is not None:
                architecture = dict(architecture)
                architecture.setdefault('data_preprocessor', data_preprocessor)
            with setting_prefix('architecture', architecture):
                architecture = MODELS.build(architecture)
        super().__init__(
            data_preprocessor=architecture.data_preprocessor, init_cfg=init_cfg
        )
        self.architecture = architecture

        self.num_subnets = check_int('num_subnets', num_subnets, 0)
        if bn_stats not in BN_STATS_MODES:
            raise invalid('bn_stats', bn_stats, ' | '.join(BN_STATS_MODES))
        self.bn_stats = bn_stats
        self.seed = check_int('seed', seed, allow_none=True)
        self.subnet_schedule = self._check_schedule(subnet_schedule)

        # The sub-network loss decides the logit normalisation's default,
        # so it is resolved from the task's class before the task is built.
        task_cls = task_class(task, architecture)[0]
        subnet_loss = subnet_loss or ('kl' if task_cls.has_logits else 'task')
        if subnet_loss not in SUBNET_LOSSES:
            raise invalid(
                'subnet_loss', subnet_loss, ' | '.join(SUBNET_LOSSES)
            )
        if subnet_loss == 'kl' and not task_cls.has_logits:
            raise SettingError(
                'subnet_loss',
                "='kl' needs class logits; the task "
                f"{task_cls.name!r} supports subnet_loss='task'",
            )
        if logit_norm is None:
            distils = subnet_loss == 'kl' and self.num_subnets > 0
            logit_norm = 'layernorm' if distils else 'none'
        self.task = build_task(
            task,
            architecture,
            logit_norm=logit_norm,
            logit_amplitude=logit_amplitude,
            normalize_main_logits=normalize_main_logits,
        )
        if subnet_loss == 'task' and distill:
            raise SettingError(
                'distill',
                f"={distill!r} would be ignored: subnet_loss='task' "
                "trains sub-networks on the task's ground-truth losses; "
                "allowed: distill with subnet_loss='kl', or no distill",
            )
        self.subnet_loss = subnet_loss
        self.distill = None
        if subnet_loss == 'kl':
            distill = dict(distill or {})
            distill.setdefault('type', 'mmst.KLDivergenceLoss')
            with setting_prefix('distill', distill):
                self.distill = MODELS.build(distill)

        backbone = architecture.backbone
        self.elastic = ElasticDepth(backbone, elastic_stages)
        self.space = self._build_space(space or {}, backbone)
        self.size_sampler = None
        if input_resize is not None:
            if not isinstance(input_resize, dict):
                raise invalid(
                    'input_resize',
                    input_resize,
                    'None, dict(ratio_range=(lo, hi)) or '
                    'dict(size_range=(min, max))',
                )
            with setting_prefix('input_resize'):
                self.size_sampler = InputSizeSampler(**input_resize)
            self.task.check_rescale(input_resize)
            fixed = self.task.fixed_input_shape()
            if fixed is not None:
                channels = input_channels(backbone)
                smallest = self.task.smallest_input(
                    self.size_sampler, channels
                )
                fixed = ((channels, *fixed), smallest)
            check_smaller_inputs(
                backbone, self.size_sampler, input_resize, fixed
            )

        #: Counts each pass's FLOPs when set (``mmst.engine.STCostHook``).
        self.flop_meter = None
        # Checkpoints carry the architecture's plain keys.
        self._register_state_dict_hook(self._strip_prefix)
        self._register_load_state_dict_pre_hook(self._add_prefix)

    # -- construction ---------------------------------------------------
    @staticmethod
    def _check_schedule(cfg: Optional[dict]) -> Optional[dict]:
        """``subnet_schedule`` with its defaults filled in, or None."""
        if cfg is None:
            return None
        if not isinstance(cfg, dict):
            raise invalid(
                'subnet_schedule',
                cfg,
                'None or dict(begin=..., warmup=..., by_epoch=...)',
            )
        unknown = set(cfg) - set(SCHEDULE_DEFAULTS)
        if unknown:
            raise SettingError(
                'subnet_schedule',
                f' has unknown keys {sorted(unknown)}; allowed: '
                + ', '.join(map(repr, SCHEDULE_DEFAULTS)),
            )
        schedule = {**SCHEDULE_DEFAULTS, **cfg}
        with setting_prefix('subnet_schedule'):
            for key in ('begin', 'warmup'):
                schedule[key] = check_int(key, schedule[key], 0)
            if not isinstance(schedule['by_epoch'], bool):
                raise invalid('by_epoch', schedule['by_epoch'], 'True, False')
        return schedule

    def _build_space(self, cfg: dict, backbone: nn.Module) -> SubnetSpace:
        if not isinstance(cfg, dict):
            raise invalid('space', cfg, 'dict(depths=..., mode=...)')
        unknown = set(cfg) - {'depths', 'mode'}
        if unknown:
            raise SettingError(
                'space',
                f' has unknown keys {sorted(unknown)}; '
                "allowed: 'depths', 'mode'",
            )
        with setting_prefix('space'):
            return self._check_space(cfg, backbone)

    def _check_space(self, cfg: dict, backbone: nn.Module) -> SubnetSpace:
        """The space of ``cfg`` (``space``'s value), its errors named
        relative to it (``depths``, ``mode``)."""
        stage_depths = self.elastic.stage_depths
        space = SubnetSpace(
            stage_depths,
            cfg.get('depths', 'default'),
            cfg.get('mode', 'ordered'),
        )
        # Frozen blocks (no trainable parameter, e.g. a backbone's
        # ``frozen_stages``) are never skipped: a preset keeps depths that
        # include them, an explicit depth that would skip one is an error.
        explicit = not isinstance(cfg.get('depths', 'default'), str)
        frozen_stages = getattr(backbone, 'frozen_stages', None)
        # Some backbones freeze only in train() (Swin); the runner calls it
        # before training anyway, in the same mode.
        backbone.train(backbone.training)
        frozen_prefix = self.elastic.frozen_prefix()
        for i, frozen in enumerate(frozen_prefix):
            n = stage_depths[i]
            choices = space.depth_choices[i]
            kept = [k for k in choices if k >= frozen]
            if kept != choices:
                if explicit:
                    raise SettingError(
                        f'depths[{i}]',
                        f'={choices} would skip frozen '
                        f'blocks: the first {frozen} of the {n} blocks of '
                        f'stage {i} have no trainable parameter '
                        f'(frozen_stages={frozen_stages}); allowed: depths '
                        f'>= {frozen}',
                    )
                space.depth_choices[i] = kept
            if space.mode == 'stochastic' and 1 < frozen < n:
                raise SettingError(
                    'mode',
                    "='stochastic' would skip frozen blocks: the "
                    f'first {frozen} of the {n} blocks of stage {i} have no '
                    f'trainable parameter (frozen_stages={frozen_stages}) '
                    "and stochastic sampling keeps only a stage's first "
                    "block for sure; allowed: mode='ordered', or no frozen "
                    'blocks inside a stage',
                )
        if (
            self.num_subnets
            and len(space) == 1
            and space.largest() == space.full()
        ):
            raise SettingError(
                'depths',
                f'={cfg.get("depths", "default")!r} leaves one '
                f'sub-network, the full network (stage depths '
                f'{stage_depths}, frozen blocks per stage {frozen_prefix}): '
                f'num_subnets={self.num_subnets} would repeat the main pass; '
                'allowed: a space with a member shallower than the full '
                'network, or num_subnets=0 (conventional training)',
            )
        return space

    @staticmethod
    def _strip_prefix(module, state_dict, prefix, local_metadata):
        """State dict hook: the architecture's keys without
        ``architecture.``, in the tensors and in ``_metadata`` (the module
        versions); other keys of this module (the shared data preprocessor,
        the losses) are dropped."""
        arch = prefix + 'architecture.'
        plain = OrderedDict()
        for key, value in state_dict.items():
            if key.startswith(arch):
                plain[prefix + key[len(arch) :]] = value
            elif not key.startswith(prefix):
                plain[key] = value
        state_dict.clear()
        state_dict.update(plain)
        metadata = getattr(state_dict, '_metadata', None)
        if metadata is not None:
            own = prefix[:-1]  # this module's own metadata key
            entries = list(metadata.items())
            metadata.clear()
            for key, value in entries:
                if key == arch[:-1]:
                    metadata[own] = value
                elif key.startswith(arch):
                    metadata[prefix + key[len(arch) :]] = value
                elif not (key == own or key.startswith(prefix)):
                    metadata[key] = value
        return state_dict

    @staticmethod
    def _add_prefix(state_dict, prefix, *args, **kwargs):
        """Load pre-hook: plain (architecture) keys get ``architecture.``
        back, in the tensors and, where the state dict carries it (loading
        into this module as the root), in ``_metadata``; entries are added,
        the caller's metadata keeps its own."""
        arch = prefix + 'architecture.'
        for key in [k for k in state_dict if k.startswith(prefix)]:
            if not key.startswith(arch):
                state_dict[arch + key[len(prefix) :]] = state_dict.pop(key)
        metadata = getattr(state_dict, '_metadata', None)
        if metadata is not None:
            own = prefix[:-1]
            for key in list(metadata):
                if key == own and arch[:-1] not in metadata:
                    metadata[arch[:-1]] = metadata[key]
                elif key.startswith(prefix) and not key.startswith(arch[:-1]):
                    metadata.setdefault(
                        arch + key[len(prefix) :], metadata[key]
                    )

    # -- sub-networks ---------------------------------------------------
    @contextmanager
    def as_subnet(self, subnet: Optional[Subnet]) -> Iterator[None]:
        """Run the architecture as ``subnet`` inside the context."""
        with self.elastic.activate(subnet):
            yield

    def _sequence_seed(self, hub: MessageHub) -> Optional[int]:
        """The seed of the sub-network / input-size sequence: ``seed`` when
        given, else the runner's seed as rank 0 has it.

        With ``randomness=dict(diff_rank_seed=True)`` the runner's seed is
        ``seed + rank``; the sequence must not be (every rank has to run
        the same sub-network at the same step), so rank 0's value is
        broadcast once and kept in the message hub, whose runtime info
        checkpoints carry: a resumed run continues the same sequence.
        """
        if self.seed is not None:
            return self.seed
        seed = hub.get_info(SEQUENCE_SEED_KEY)
        if seed is None:
            seed = hub.get_info('seed')
            if seed is None:  # outside a runner
                return None
            if dist.is_available() and dist.is_initialized():
                shared = [seed]
                broadcast_object_list(shared, src=0)
                seed = shared[0]
            hub.update_info(SEQUENCE_SEED_KEY, seed)
        return seed

    def _iteration(self, hub: MessageHub) -> int:
        """The runner's iteration (0-based), or outside a runner the
        number of ``train_step`` calls of this model so far."""
        iteration = hub.get_info('iter')
        if iteration is None:  # outside a runner: count the steps here
            iteration = getattr(self, '_local_iter', 0)
        return iteration

    def _rng(self, pass_index: int) -> random.Random:
        hub = MessageHub.get_current_instance()
        seed = self._sequence_seed(hub)
        return SubnetSpace.rng_for(seed, self._iteration(hub), pass_index)

    def current_subnet_weight(self) -> float:
        """The weight of this iteration's sub-network losses under
        ``subnet_schedule`` (:func:`subnet_weight` of the runner's
        iteration or epoch); 0: no sub-network pass. 1.0 without a
        schedule.

        Raises:
            RuntimeError: ``by_epoch=True`` outside a runner (no epoch in
                the message hub).
        """
        schedule = self.subnet_schedule
        if schedule is None:
            return 1.0
        hub = MessageHub.get_current_instance()
        if schedule['by_epoch']:
            step = hub.get_info('epoch')
            if step is None:
                raise RuntimeError(
                    'subnet_schedule.by_epoch=True counts epochs, but the '
                    "message hub has no 'epoch' (set by MMEngine's "
                    'RuntimeInfoHook in a runner); outside a runner use '
                    "by_epoch=False or update_info('epoch', ...)"
                )
        else:
            step = self._iteration(hub)
        return subnet_weight(step, schedule['begin'], schedule['warmup'])

    def sample(self, pass_index: int, shorter_side: int):
        """The sub-network and input size of a pass, fixed by the seed, the
        iteration and ``pass_index`` (same on every rank)."""
        rng = self._rng(pass_index)
        subnet = self.space.sample(rng)
        size = (
            self.size_sampler.sample(rng, shorter_side)
            if self.size_sampler is not None
            else shorter_side
        )
        return subnet, size

    @contextmanager
    def _subnet_context(self, subnet: Subnet) -> Iterator[None]:
        bn_context = (
            freeze_bn_running_stats(self.architecture)
            if self.bn_stats == 'main'
            else nullcontext()
        )
        with self.as_subnet(subnet), bn_context:
            yield

    # -- the training step ----------------------------------------------
    def train_step(
        self,
        data: Union[dict, tuple, list],
        optim_wrapper: OptimWrapper,
        sync_gradients: Optional[Callable[[], None]] = None,
    ) -> Dict[str, torch.Tensor]:
        """One ST iteration: main pass, N sub-network passes, one update.

        Every pass is backwarded as soon as its loss exists, so peak memory
        is that of one pass whatever N is. Gradient accumulation counts the
        iteration once. Under ``subnet_schedule`` the sub-network passes
        run from its ``begin`` on, each loss multiplied by
        :meth:`current_subnet_weight` before its backward.

        Args:
            data (dict | tuple | list): A batch from the dataloader.
            optim_wrapper (OptimWrapper): Any single optimizer wrapper
                (incl. AMP, gradient clipping, ``accumulative_counts``).
            sync_gradients (Callable, optional): Called once after all
                passes, before the optimizer step (the distributed wrapper
                averages gradients there).

        Returns:
            dict[str, Tensor | float]: Log variables: the architecture's
            losses; ``loss``, the total that was backwarded (main loss +
            weight x the sum of the sub-network losses). With
            ``num_subnets > 0`` also ``loss_main`` and, with a
            ``subnet_schedule``, ``subnet_weight`` (0 before ``begin``),
            every iteration; on iterations with sub-network passes
            ``loss_subnet`` (their unweighted mean), ``subnet_size`` (mean
            shorter input side, px) and ``subnet_depth_s{i}`` (mean
            blocks kept in stage i).
        """
        if not isinstance(optim_wrapper, OptimWrapper):
            raise TypeError(
                'StimulativeTraining needs a single OptimWrapper,'
                f' got {type(optim_wrapper).__name__}'
            )
        arch = self.architecture
        depth_sums = [0] * len(self.space.stage_depths)
        subnet_loss_sum, size_sum = 0.0, 0
        weight = self.current_subnet_weight() if self.num_subnets else 0.0
        passes = self.num_subnets if weight > 0 else 0
        meter = self.flop_meter
        count = meter.count if meter is not None else _not_counted
        with one_iteration(optim_wrapper) as backward:
            with optim_wrapper.optim_context(self):
                data = self.data_preprocessor(data, True)
                inputs, samples = data['inputs'], data.get('data_samples')
            shorter = min(inputs.shape[-2:])
            with count(None, shorter):
                with optim_wrapper.optim_context(self):
                    main_losses, teacher = self.task.main_pass(
                        arch, inputs, samples
                    )
                main_loss, log_vars = self.parse_losses(main_losses)
                backward(main_loss)

            for i in range(1, passes + 1):
                subnet, size = self.sample(i, shorter)
                with self._subnet_context(subnet), count(subnet, size):
                    with optim_wrapper.optim_context(self):
                        sub_inputs, sub_samples = self.task.rescale(
                            inputs, samples, size / shorter
                        )
                        try:
                            sub_losses = self.task.subnet_pass(
                                arch,
                                sub_inputs,
                                sub_samples,
                                teacher,
                                self.distill,
                            )
                        except Exception as e:
                            if size != shorter:
                                e.add_note(_resized_note(inputs, size))
                            raise
                    sub_loss, _ = self.parse_losses(sub_losses)
                    # Backward inside the sub-network context: activation
                    # checkpointing (``with_cp=True``) re-runs the kept
                    # blocks' forward here, and must see the same frozen BN
                    # statistics and skipped blocks as the forward did.
                    # subnet_schedule's warm-up scales the gradients.
                    backward(sub_loss if weight == 1.0 else sub_loss * weight)
                subnet_loss_sum += sub_loss.item()
                size_sum += size
                depth_sums = [
                    a + b for a, b in zip(depth_sums, subnet_depths(subnet))
                ]
        self._local_iter = getattr(self, '_local_iter', 0) + 1

        if optim_wrapper.should_update():
            if sync_gradients is not None:
                sync_gradients()
            optim_wrapper.step()
            optim_wrapper.zero_grad()

        if self.num_subnets:
            log_vars['loss_main'] = log_vars['loss']
            if self.subnet_schedule is not None:
                log_vars['subnet_weight'] = weight
        if passes:
            log_vars['loss_subnet'] = subnet_loss_sum / passes
            # the total that was backwarded
            log_vars['loss'] = log_vars['loss'] + weight * subnet_loss_sum
            log_vars['subnet_size'] = size_sum / passes
            for s, total in enumerate(depth_sums):
                log_vars[f'subnet_depth_s{s + 1}'] = total / passes
        return log_vars

    # -- evaluation: the architecture's own -----------------------------
    def val_step(self, data: Union[dict, tuple, list]) -> list:
        return self.architecture.val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        return self.architecture.test_step(data)

    def forward(
        self,
        inputs: torch.Tensor,
        data_samples: Optional[List] = None,
        mode: str = 'tensor',
    ):
        if mode == 'loss':
            # A wrapper that calls forward(mode='loss') (torch / MMEngine
            # DDP) would silently train the main network only.
            raise RuntimeError(
                'StimulativeTraining trains through its train_step; in '
                'distributed runs set model_wrapper_cfg=dict(type='
                "'mmst.STDistributedDataParallel') (tools/train.py does it)"
            )
        return self.architecture(inputs, data_samples, mode)


def unwrap_st(model: nn.Module) -> nn.Module:
    """The upstream architecture inside a (wrapped) ST model, or the model."""
    model = getattr(model, 'module', model)
    return getattr(model, 'architecture', model)


#: ElasticDepth of plain models' backbones, built once per model.
_PLAIN_ELASTIC: 'weakref.WeakKeyDictionary' = weakref.WeakKeyDictionary()


def elastic_of(model: nn.Module) -> Tuple[ElasticDepth, SubnetSpace]:
    """The ``(ElasticDepth, SubnetSpace)`` of a (wrapped) ST model, or of a
    plain upstream model's backbone with its default space (built at the
    first call for that model, then reused).

    Raises:
        TypeError: The backbone's residual stages cannot be found (declare
            ``elastic_stages``).
    """
    model = getattr(model, 'module', model)
    if hasattr(model, 'elastic') and hasattr(model, 'space'):
        return model.elastic, model.space
    backbone = unwrap_st(model).backbone
    found = _PLAIN_ELASTIC.get(backbone)
    if found is None:
        elastic = ElasticDepth(backbone)
        found = (elastic, SubnetSpace(elastic.stage_depths))
        _PLAIN_ELASTIC[backbone] = found
    return found
