"""Image classification (mmpretrain): the task with class logits.

The main network's loss is the head's own loss (``ClsHead._get_loss``:
label smoothing, mixup targets ...) on the normalised logits ``norm(z)``
(or on ``z``, ``normalize_main_logits=False``); the teacher is
``norm(z).detach()``. A sub-network is trained with the ``distill`` loss
between ``norm(s)`` and the teacher (:meth:`BaseTask.subnet_pass`), or
with the head's loss on ``norm(s)`` (``subnet_loss='task'``).
Normalisation runs in float32.
"""

from typing import Tuple

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from mmst.registry import TASKS
from mmst.subnet.rescale import check_scale, scaled

from ..losses.kl_divergence import normalize_logits
from .base import BaseTask, Batch, Losses, Samples


@TASKS.register_module('classification')
class ClassificationTask(BaseTask):
    """mmpretrain ``ImageClassifier`` models with a ``ClsHead``.

    Args: see :class:`BaseTask`.

    Raises:
        TypeError: A head whose loss the passes would bypass
            (:meth:`check_architecture`).
    """

    name = 'classification'
    model_bases = ('ImageClassifier',)
    has_logits = True

    def check_architecture(self, architecture: nn.Module) -> None:
        """Refuse a head whose own loss logic the passes would lose.

        The passes compute the head's logits themselves (to normalise them
        and to keep the teacher) and then call the head's ``_get_loss``:
        that is the head's own loss only for heads that keep mmpretrain
        ``ClsHead``'s ``loss`` and ``_get_loss`` (``ClsHead``,
        ``LinearClsHead``, ``StackedLinearClsHead``,
        ``VisionTransformerClsHead`` ...). A head that overrides them
        (margin heads such as ``ArcFaceClsHead``, multi-label heads,
        ``ConformerHead`` with its tuple of logits) would silently lose its
        logic.

        Raises:
            TypeError: The head is not one mmst can drive.
        """
        from mmpretrain.models.heads import ClsHead

        head = getattr(architecture, 'head', None)
        cls = type(head)
        if (
            isinstance(head, ClsHead)
            and cls.loss is ClsHead.loss
            and cls._get_loss is ClsHead._get_loss
        ):
            return
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

    @staticmethod
    def raw_logits(arch: nn.Module, inputs: Tensor) -> Tensor:
        """The head's logits ``(B, num_classes)``, in the forward's dtype.

        Raises:
            TypeError: The head returned something else than one tensor.
        """
        logits = arch.head(arch.extract_feat(inputs))
        if not isinstance(logits, Tensor):
            raise TypeError(
                f'model.architecture.head: {type(arch.head).__name__} '
                f'returned {type(logits).__name__} in training; '
                'StimulativeTraining needs one tensor of class logits'
            )
        return logits

    def normalize(self, logits: Tensor) -> Tensor:
        """``norm(logits)`` in float32 (``logit_norm``, amplitude)."""
        return normalize_logits(logits, self.logit_norm, self.logit_amplitude)

    def logits(self, arch: nn.Module, inputs: Tensor) -> Tensor:
        """A student's normalised logits ``norm(s)`` (float32)."""
        return self.normalize(self.raw_logits(arch, inputs))

    def main_pass(
        self, arch: nn.Module, inputs: Tensor, samples: Samples
    ) -> Tuple[Losses, Tensor]:
        """The head's loss and the teacher ``norm(z).detach()`` (float32,
        ``(B, num_classes)``)."""
        raw = self.raw_logits(arch, inputs)
        logits = self.normalize(raw)
        losses = arch.head._get_loss(
            logits if self.normalize_main_logits else raw, samples
        )
        return losses, logits.detach()

    def task_losses(self, arch: nn.Module, inputs: Tensor, samples) -> Losses:
        """The head's loss on a sub-network's ``norm(s)``."""
        return arch.head._get_loss(self.logits(arch, inputs), samples)

    def rescale(self, inputs: Tensor, samples: Samples, scale: float) -> Batch:
        """The batch resized bilinearly (from the original batch) to
        ``round(H * scale) x round(W * scale)``; labels do not depend on the
        size, the samples are returned as they are."""
        scale = check_scale(scale)
        h, w = inputs.shape[-2:]
        size = (scaled(h, scale), scaled(w, scale))
        if size == (h, w):
            return inputs, samples
        resized = F.interpolate(
            inputs, size=size, mode='bilinear', align_corners=False
        )
        return resized, samples
