"""The base of mmst's tasks, and how the task of a model is found.

A task is what differs between kinds of upstream models in an ST step
(``StimulativeTraining.train_step``): the main network's pass, a
sub-network's pass, and how a batch and its ground truth are rescaled for a
sub-network's smaller input. Tasks are registered in
:data:`mmst.registry.TASKS` under their name (``docs/tasks.md``).
"""

from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Tuple,
    Union,
)

import torch.nn as nn
from mmengine.registry import Registry
from torch import Tensor

from mmst.registry import TASKS
from mmst.settings import SettingError, check_number

from ..losses.kl_divergence import check_normalize

Samples = Optional[List]  # data samples of a batch, or None
Batch = Tuple[Tensor, Samples]
Losses = Dict[str, Tensor]


class BaseTask:
    """What one kind of upstream model needs in an ST step.

    Per iteration the step calls :meth:`main_pass` once, then per
    sub-network :meth:`rescale` and :meth:`subnet_pass`. The rescaling
    settings (``settings``, a dict of the keys of ``defaults``) are read
    from the model once, here (:meth:`read_settings`); keys given
    explicitly replace them.

    A subclass sets ``name`` (its registry name), ``model_bases`` (names of
    the upstream classes whose models it handles, for inference from the
    model), ``has_logits`` and ``defaults``, and implements :meth:`rescale`;
    the passes run :meth:`task_losses` (the model's own ``loss``) and, for
    distillation, :meth:`logits`.

    Args:
        architecture (nn.Module, optional): The upstream model; None for a
            task that only rescales, with explicit settings.
        logit_norm (str): ``'none' | 'layernorm' | 'l2'``: normalisation of
            class logits (tasks with logits only).
        logit_amplitude (float): Scale after normalisation.
        normalize_main_logits (bool): The main network's loss uses the
            normalised logits too.
        **settings: Rescaling settings (keys of ``defaults``).

    Raises:
        ValueError: An unknown setting; ``logit_norm`` other than
            ``'none'`` for a task without class logits, or unknown.
    """

    name = 'base'
    model_bases: Tuple[str, ...] = ()
    has_logits = False
    defaults: Dict[str, Any] = {}

    def __init__(
        self,
        architecture: Optional[nn.Module] = None,
        logit_norm: str = 'none',
        logit_amplitude: float = 1.0,
        normalize_main_logits: bool = True,
        **settings,
    ) -> None:
        self.logit_norm = check_normalize(logit_norm, 'logit_norm')
        if logit_norm != 'none' and not self.has_logits:
            raise SettingError(
                'logit_norm',
                f'={logit_norm!r} normalises class logits; the '
                f"task {self.name!r} has none; allowed: 'none'",
            )
        unknown = sorted(set(settings) - set(self.defaults))
        if unknown:
            raise SettingError(
                'task',
                f' {self.name!r}: unknown settings {unknown}; allowed: '
                + (', '.join(sorted(self.defaults)) or 'none'),
            )
        self.logit_amplitude = float(
            check_number('logit_amplitude', logit_amplitude)
        )
        self.normalize_main_logits = bool(normalize_main_logits)
        read = {}
        if architecture is not None:
            self.check_architecture(architecture)
            read = self.read_settings(architecture)
        self.settings = {**self.defaults, **read, **settings}

    def check_architecture(self, architecture: nn.Module) -> None:
        """Refuse, at build time, a model the passes would train wrongly
        (raise). Every model is fine here."""

    def fixed_input_shape(self) -> Optional[Tuple[int, int]]:
        """The ``(h, w)`` of every batch when the model fixes it (a
        top-down pose model's crops), else None (sizes come from the data
        pipeline). None here."""
        return None

    def smallest_input(self, sampler: Any, channels: int = 3):
        """The shape ``(C, H, W)`` of the smallest input batch a
        sub-network gets from ``sampler`` (an ``InputSizeSampler``) when the
        model fixes its input size (:meth:`fixed_input_shape`): the size
        rescaled as :meth:`rescale` does it, padding included; None when
        the size is not fixed."""
        shape = self.fixed_input_shape()
        if shape is None:
            return None
        import torch

        shorter = min(shape)
        small = sampler.smallest(shorter)
        dummy = torch.zeros(1, channels, *shape)
        resized = self.rescale(dummy, None, small / shorter)[0]
        return tuple(resized.shape[1:])

    def check_rescale(self, input_resize: Any) -> None:
        """Refuse, at build time, smaller sub-network inputs whose ground
        truth :meth:`rescale` cannot follow (raise a ``SettingError`` for
        ``input_resize``, the config's value, naming what is allowed).
        ``StimulativeTraining`` calls it when ``input_resize`` is set.
        Every model is fine here."""

    def read_settings(self, architecture: nn.Module) -> Dict[str, Any]:
        """The rescaling settings of ``architecture``. None here."""
        return {}

    def main_pass(
        self, arch: nn.Module, inputs: Tensor, samples: Samples
    ) -> Tuple[Losses, Optional[Tensor]]:
        """The full network's :meth:`task_losses`, and the teacher logits
        (None here: no logits)."""
        return self.task_losses(arch, inputs, samples), None

    def subnet_pass(
        self,
        arch: nn.Module,
        inputs: Tensor,
        samples: Samples,
        teacher: Optional[Tensor],
        distill: Optional[nn.Module],
    ) -> Losses:
        """A sub-network's losses: ``distill(logits, teacher)`` as
        ``loss_distill`` (:meth:`logits`) when ``distill`` is given, else
        its :meth:`task_losses`."""
        if distill is None:
            return self.task_losses(arch, inputs, samples)
        return {'loss_distill': distill(self.logits(arch, inputs), teacher)}

    def task_losses(self, arch: nn.Module, inputs: Tensor, samples) -> Losses:
        """The ground-truth losses: the model's own ``loss``, on
        :func:`fresh_samples` (the caller's samples serve every pass of the
        iteration)."""
        return arch.loss(inputs, fresh_samples(samples))

    def logits(self, arch: nn.Module, inputs: Tensor) -> Tensor:
        """A student's class logits for distillation.

        Raises:
            TypeError: This task has none.
        """
        raise TypeError(
            f'the task {self.name!r} has no class logits to distil; '
            "allowed: subnet_loss='task' (distill=None)"
        )

    def rescale(self, inputs: Tensor, samples: Samples, scale: float) -> Batch:
        """The batch ``(B, C, H, W)`` resized by ``scale`` (finite, > 0) and
        data samples whose ground truth and metainfo follow; the caller's
        are left untouched (returned as they are when nothing changes)."""
        raise NotImplementedError(
            f'{type(self).__name__} does not implement rescale()'
        )


def _fresh(element: Any) -> Any:
    from mmengine.structures import BaseDataElement

    if not isinstance(element, BaseDataElement):
        return element
    out = type(element)(metainfo=element.metainfo)
    for key, value in element.items():
        setattr(out, key, _fresh(value))
    return out


def fresh_samples(samples: Samples) -> Samples:
    """New data samples holding the same tensors: new sample and field
    containers (``InstanceData``, ``PixelData`` ...), the values shared.

    A model's ``loss`` may rename fields of the samples it gets in place
    (mmdet's RoI heads turn ``proposals.bboxes`` into ``priors``); a batch
    that one ST iteration uses for N + 1 passes must stay as it was, and
    copying the structure (not the tensors) costs next to nothing.

    Args:
        samples (list, optional): mmengine ``BaseDataElement`` data
            samples (other objects are passed as they are), or None.

    Returns:
        list | None: The new samples.
    """
    if samples is None:
        return None
    return [_fresh(s) for s in samples]


def padding_of(architecture: nn.Module) -> Dict[str, Any]:
    """``size_divisor`` (``pad_size_divisor`` / ``size_divisor`` of the
    data preprocessor; 1 when it has none) and ``pad_value``
    (``pad_value`` / ``pad_val``; 0 when none)."""
    pre = architecture.data_preprocessor
    divisor = (
        getattr(pre, 'pad_size_divisor', None)
        or getattr(pre, 'size_divisor', None)
        or 1
    )
    pad_value = getattr(pre, 'pad_value', getattr(pre, 'pad_val', 0))
    return dict(size_divisor=int(divisor), pad_value=float(pad_value or 0))


def _registered(registry: Registry, prefix: str = '') -> Iterator[tuple]:
    """(name, class) of every task in ``registry`` and its descendants;
    a descendant's names carry its scope (``'scope.name'``)."""
    for name, cls in registry.module_dict.items():
        yield prefix + name, cls
    for scope, child in registry.children.items():
        yield from _registered(child, f'{scope}.')


def _task_class(name: Any) -> type:
    """The registered task class ``name`` (or ``name`` if a class).

    Raises:
        ValueError: Not a registered name.
    """
    if isinstance(name, type):
        return name
    cls = TASKS.get(name) if isinstance(name, str) else None
    if cls is None:
        TASKS.import_from_location()
        raise ValueError(
            f'task={name!r} is not a registered task; allowed: '
            + ' | '.join(n for n, _ in _registered(TASKS))
        )
    return cls


def infer_task(architecture: Union[nn.Module, type]) -> str:
    """The registry name of the task of an upstream model (or model class,
    e.g. to sort configs before building them): the task whose
    ``model_bases`` names the most specific class of the model's class
    hierarchy.

    Raises:
        TypeError: No registered task handles the model.
    """
    TASKS.import_from_location()
    tasks = list(_registered(TASKS))
    model_cls = (
        architecture if isinstance(architecture, type) else type(architecture)
    )
    for cls in model_cls.__mro__:
        for name, task in tasks:
            if cls.__name__ in getattr(task, 'model_bases', ()):
                return name
    raise TypeError(
        f'cannot tell the task of {model_cls.__name__}; set task= '
        f'one of {" | ".join(n for n, _ in tasks)} in the ST model config'
    )


def task_class(
    task: Union[None, str, dict], architecture: nn.Module
) -> Tuple[type, dict]:
    """The task class of ``task`` (see :func:`build_task`) and its config
    dict, without building it (e.g. to read ``has_logits`` first).

    Raises:
        TypeError: ``task`` of another type, or None for a model that no
            registered task handles.
        ValueError: A name that is not registered.
    """
    if task is None:
        task = infer_task(architecture)
    cfg = dict(type=task) if isinstance(task, str) else task
    if not isinstance(cfg, dict):
        raise TypeError(
            f'task={task!r} is invalid; allowed: a registered task name, '
            'a dict(type=name, ...) or None (inferred from the model)'
        )
    # The class from the registry, built by the caller: Registry.build would
    # first look for the caller's default scope (mmpretrain, mmdet ...) in
    # the task registry tree and warn that it is not there.
    return _task_class(cfg.get('type')), cfg


def build_task(
    task: Union[None, str, dict], architecture: nn.Module, **kwargs
) -> BaseTask:
    """Build the task of ``architecture`` from :data:`mmst.registry.TASKS`.

    Args:
        task (str | dict, optional): A registered name, a config dict
            (``dict(type=name, **settings)``) or None (inferred from the
            model, :func:`infer_task`).
        architecture (nn.Module): The upstream model.
        **kwargs: Default arguments of the task (the logit settings).

    Raises:
        TypeError: ``task`` of another type, or None for a model that no
            registered task handles.
        ValueError: A name that is not registered.
    """
    cls, cfg = task_class(task, architecture)
    args = dict(kwargs, architecture=architecture)
    args.update((k, v) for k, v in cfg.items() if k != 'type')
    return cls(**args)


def get_rescaler(task: str) -> Callable[..., Batch]:
    """The rescaling of the registered task ``task`` with explicit settings
    instead of a model's: ``rescale(inputs, data_samples, scale,
    size_divisor=1, pad_value=0.0, **settings) -> (inputs, data_samples)``
    (see the task's ``defaults`` for the other settings).

    Raises:
        ValueError: ``task`` is not registered (here), or a setting the task
            does not have (when called).
    """
    cls = _task_class(task)

    def rescale(
        inputs: Tensor,
        data_samples: Samples,
        scale: float,
        size_divisor: int = 1,
        pad_value: float = 0.0,
        **settings,
    ) -> Batch:
        settings.update(size_divisor=size_divisor, pad_value=pad_value)
        return cls(**settings).rescale(inputs, data_samples, scale)

    return rescale
