"""What differs between tasks in an ST step: how the main network's loss and
teacher logits are computed, and how a sub-network is supervised. Input
rescaling per task lives in :mod:`mmst.subnet.rescale`."""

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from ..losses.kl_divergence import normalize_logits

TASKS = ('classification', 'detection', 'segmentation', 'pose')
# Base classes of the upstream models, by name (no import of the libraries).
_TASK_BASES = {
    'ImageClassifier': 'classification',
    'BaseDetector': 'detection',
    'BaseSegmentor': 'segmentation',
    'BasePoseEstimator': 'pose',
}


def infer_task(architecture: nn.Module) -> str:
    """The task of an upstream model, from its class hierarchy."""
    for cls in type(architecture).__mro__:
        if cls.__name__ in _TASK_BASES:
            return _TASK_BASES[cls.__name__]
    raise TypeError(
        f'cannot tell the task of {type(architecture).__name__}; set '
        f'task= one of {" | ".join(TASKS)} in the ST model config'
    )


class TaskAdapter:
    """The main and sub-network passes of one task.

    Args:
        task (str): One of :data:`TASKS`.
        normalize (str): Logit normalisation of classifiers (applied to the
            main network's CE too, as in the authors' code).
        amplitude (float): Scale of the normalised logits.
        normalize_main (bool): Train the main network's CE on the normalised
            logits (the authors' code); False keeps its CE on the raw logits
            (the teacher is normalised either way).
    """

    def __init__(
        self,
        task: str,
        normalize: str = 'none',
        amplitude: float = 1.0,
        normalize_main: bool = True,
    ) -> None:
        if task not in TASKS:
            raise ValueError(
                f'task={task!r} is invalid; allowed: ' + ' | '.join(TASKS)
            )
        self.task = task
        self.normalize = normalize
        self.amplitude = amplitude
        self.normalize_main = normalize_main

    def check_architecture(self, arch: nn.Module) -> None:
        """Refuse, at build time, a model whose losses the passes would
        compute wrongly.

        Classification passes compute the head's logits themselves (to
        normalise them and to keep the teacher) and then call the head's
        ``_get_loss``: that is the head's own loss only for heads that keep
        mmpretrain ``ClsHead``'s ``loss`` and ``_get_loss`` (``ClsHead``,
        ``LinearClsHead``, ``StackedLinearClsHead``,
        ``VisionTransformerClsHead`` ...). A head that overrides them
        (margin heads such as ``ArcFaceClsHead``, multi-label heads,
        ``ConformerHead`` with its tuple of logits) would silently lose its
        logic.

        Raises:
            TypeError: The head is not one mmst can drive.
        """
        if self.task != 'classification':
            return
        from mmpretrain.models.heads import ClsHead

        head = getattr(arch, 'head', None)
        cls = type(head)
        if not (
            isinstance(head, ClsHead)
            and cls.loss is ClsHead.loss
            and cls._get_loss is ClsHead._get_loss
        ):
            overridden = [
                m
                for m in ('loss', '_get_loss')
                if isinstance(head, ClsHead)
                and getattr(cls, m) is not getattr(ClsHead, m)
            ]
            why = (
                f'it overrides {" and ".join(overridden)}'
                if overridden
                else 'it is not an mmpretrain ClsHead'
            )
            raise TypeError(
                f'model.architecture.head: {cls.__name__} cannot be trained '
                f'by StimulativeTraining ({why}): ST computes the logits '
                "itself and applies the head's ClsHead loss to them; "
                'allowed: heads that keep ClsHead.loss and ClsHead._get_loss'
                ' (ClsHead, LinearClsHead, StackedLinearClsHead, '
                'VisionTransformerClsHead, ...)'
            )

    def rescale_args(self, arch: nn.Module) -> Tuple[tuple, dict]:
        """Positional (size divisor, pad value) and task-specific keyword
        arguments of the task's rescaler, read from the model."""
        pre = arch.data_preprocessor
        divisor = (
            getattr(pre, 'pad_size_divisor', None)
            or getattr(pre, 'size_divisor', None)
            or 1
        )
        pad_value = getattr(pre, 'pad_value', getattr(pre, 'pad_val', 0))
        kwargs: dict = {}
        if self.task == 'detection':
            kwargs = dict(
                mask_pad_value=getattr(pre, 'mask_pad_value', 0),
                seg_pad_value=getattr(pre, 'seg_pad_value', 255),
            )
        elif self.task == 'segmentation':
            kwargs = dict(seg_pad_value=getattr(pre, 'seg_pad_val', 255))
        elif self.task == 'pose':
            # targets are re-encoded for the smaller input by the model's codec
            kwargs = dict(codec=getattr(arch.head, 'decoder', None))
        return (int(divisor), float(pad_value or 0)), kwargs

    @property
    def has_logits(self) -> bool:
        return self.task == 'classification'

    @staticmethod
    def _raw_logits(arch: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        """The head's logits, (B, num_classes)."""
        logits = arch.head(arch.extract_feat(inputs))
        if not isinstance(logits, torch.Tensor):
            raise TypeError(
                f'model.architecture.head: {type(arch.head).__name__} '
                f'returned {type(logits).__name__} in training; '
                'StimulativeTraining needs one tensor of class logits'
            )
        return logits

    def _logits(self, arch: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        logits = self._raw_logits(arch, inputs)
        return normalize_logits(logits, self.normalize, self.amplitude)

    def main_pass(
        self,
        arch: nn.Module,
        inputs: torch.Tensor,
        data_samples: Optional[List],
    ) -> Tuple[Dict[str, torch.Tensor], Optional[torch.Tensor]]:
        """The full network's own losses, and the teacher logits (detached,
        normalised) where the task has logits."""
        if not self.has_logits:
            return arch.loss(inputs, data_samples), None
        raw = self._raw_logits(arch, inputs)
        logits = normalize_logits(raw, self.normalize, self.amplitude)
        # The head's own loss config (label smoothing, mixup targets, ...).
        losses = arch.head._get_loss(
            logits if self.normalize_main else raw, data_samples
        )
        return losses, logits.detach()

    def subnet_pass(
        self,
        arch: nn.Module,
        inputs: torch.Tensor,
        data_samples: Optional[List],
        teacher: Optional[torch.Tensor],
        distill: Optional[nn.Module],
    ) -> Dict[str, torch.Tensor]:
        """A sub-network's losses: KL to the teacher when ``distill`` is
        given, else the task's ground-truth losses."""
        if distill is None:
            if not self.has_logits:
                return arch.loss(inputs, data_samples)
            return arch.head._get_loss(
                self._logits(arch, inputs), data_samples
            )
        # The raw logits: the loss normalises them itself.
        logits = self._raw_logits(arch, inputs)
        return {'loss_kl': distill(logits, teacher)}
