"""KL divergence to the main network's logits, with the logit normalisation
of ST++ ("KL-": distillation without the logits' magnitude).

Both run in float32 whatever the autocast dtype: a float16 variance of
logits of magnitude ~300 overflows (the normalised logits become 0 and the
teacher uniform), and a bfloat16 one of near-constant logits rounds to 0.
"""

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmst.registry import MODELS
from mmst.settings import check_number, invalid

NORMALIZE_MODES = ('none', 'layernorm', 'l2')


def check_normalize(mode: str, key: str = 'normalize') -> str:
    """``mode`` if it is one of :data:`NORMALIZE_MODES`, else
    :class:`mmst.settings.SettingError` (a ValueError) naming ``key``."""
    if mode not in NORMALIZE_MODES:
        raise invalid(key, mode, ' | '.join(NORMALIZE_MODES))
    return mode


@contextmanager
def float32(tensor: torch.Tensor) -> Iterator[torch.Tensor]:
    """``tensor`` in at least float32, with autocast off on its device
    inside the context (so that the operations on it stay in float32)."""
    if tensor.is_floating_point() and torch.finfo(tensor.dtype).bits < 32:
        tensor = tensor.float()
    with torch.autocast(device_type=tensor.device.type, enabled=False):
        yield tensor


def normalize_logits(
    logits: torch.Tensor,
    mode: str = 'none',
    amplitude: float = 1.0,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Per-sample logit normalisation over the class dimension (last),
    computed in float32 (float16 / bfloat16 logits are upcast first, and
    autocast is off).

    Args:
        logits (Tensor): Shape (N, C), any number of classes C.
        mode (str): ``'none'``; ``'layernorm'``: ``(z - mean) /
            sqrt(var + eps)`` (no affine parameters, biased variance);
            ``'l2'``: ``z / ||z||_2``.
        amplitude (float): Multiplies the normalised logits.

    Returns:
        Tensor: Logits of the same shape, in at least float32.

    Raises:
        ValueError: An unknown ``mode``.
    """
    with float32(logits) as z:
        if mode == 'none':
            return z
        if mode == 'layernorm':
            mean = z.mean(dim=-1, keepdim=True)
            var = z.var(dim=-1, keepdim=True, unbiased=False)
            return (z - mean) / torch.sqrt(var + eps) * amplitude
        if mode == 'l2':
            return F.normalize(z, p=2, dim=-1, eps=eps) * amplitude
    raise ValueError(check_normalize(mode))


@MODELS.register_module()
class KLDivergenceLoss(nn.Module):
    """``loss_weight * T^2 * KL(softmax(t/T) || softmax(s/T))``, batch mean,
    in float32 (autocast off).

    The ST step passes the student's and the teacher's logits already
    normalised (``logit_norm`` of ``mmst.StimulativeTraining``); the teacher
    is detached. ``normalize`` normalises them here as well, for use on its
    own: the student always, the teacher when ``normalize_teacher``.

    Args:
        temperature (float): T. Defaults to 1.
        loss_weight (float): Defaults to 1.
        normalize (str): ``'none' | 'layernorm' | 'l2'``. Defaults to
            ``'none'``.
        amplitude (float): Scale after normalisation. Defaults to 1.
        normalize_teacher (bool): Normalise the teacher logits here too.
            Defaults to False.

    Raises:
        mmst.settings.SettingError: A ValueError naming the key (as
            ``distill.temperature`` when built as ``StimulativeTraining``'s
            ``distill``): ``temperature`` not a number > 0, ``loss_weight``
            or ``amplitude`` not a number (a bool is not one), or an
            unknown ``normalize``.
    """

    def __init__(
        self,
        temperature: float = 1.0,
        loss_weight: float = 1.0,
        normalize: str = 'none',
        amplitude: float = 1.0,
        normalize_teacher: bool = False,
    ) -> None:
        super().__init__()
        self.temperature = check_number(
            'temperature', temperature, positive=True
        )
        self.loss_weight = check_number('loss_weight', loss_weight)
        self.normalize = check_normalize(normalize)
        self.amplitude = check_number('amplitude', amplitude)
        self.normalize_teacher = normalize_teacher

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor
    ) -> torch.Tensor:
        """The loss of student logits ``(N, C)`` against teacher logits
        ``(N, C)``: a float32 scalar."""
        t = self.temperature
        student = normalize_logits(student, self.normalize, self.amplitude)
        teacher = teacher.detach()
        if self.normalize_teacher:
            teacher = normalize_logits(teacher, self.normalize, self.amplitude)
        with float32(student) as s, float32(teacher) as q:
            kl = F.kl_div(
                F.log_softmax(s / t, dim=-1),
                F.softmax(q / t, dim=-1),
                reduction='batchmean',
            )
        return self.loss_weight * t * t * kl
