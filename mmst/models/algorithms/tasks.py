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

    def _logits(self, arch: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        logits = arch.head(arch.extract_feat(inputs))
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
        raw = arch.head(arch.extract_feat(inputs))
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
        logits = arch.head(arch.extract_feat(inputs))
        return {'loss_kl': distill(logits, teacher)}
