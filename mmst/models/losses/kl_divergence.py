"""KL divergence to the main network's logits, with the logit normalisation
of ST++ ("KL-": distillation without the logits' magnitude)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmst.registry import MODELS

NORMALIZE_MODES = ('none', 'layernorm', 'l2')


def check_normalize(mode: str, key: str = 'normalize') -> str:
    if mode not in NORMALIZE_MODES:
        raise ValueError(
            f'{key}={mode!r} is invalid; allowed: '
            + ' | '.join(NORMALIZE_MODES)
        )
    return mode


def normalize_logits(
    logits: torch.Tensor,
    mode: str = 'none',
    amplitude: float = 1.0,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Per-sample logit normalisation over the class dimension (last).

    Args:
        logits (Tensor): Shape (N, C), any number of classes C.
        mode (str): ``'none'``; ``'layernorm'``: ``(z - mean) /
            sqrt(var + eps)`` (no affine parameters, biased variance);
            ``'l2'``: ``z / ||z||_2``.
        amplitude (float): Multiplies the normalised logits.

    Returns:
        Tensor: Logits of the same shape.
    """
    if mode == 'none':
        return logits
    if mode == 'layernorm':
        mean = logits.mean(dim=-1, keepdim=True)
        var = logits.var(dim=-1, keepdim=True, unbiased=False)
        return (logits - mean) / torch.sqrt(var + eps) * amplitude
    if mode == 'l2':
        return F.normalize(logits, p=2, dim=-1, eps=eps) * amplitude
    raise ValueError(check_normalize(mode))


@MODELS.register_module()
class KLDivergenceLoss(nn.Module):
    """``loss_weight * T^2 * KL(softmax(t/T) || softmax(s/T))``, batch mean.

    The teacher is detached; both logits are normalised with ``normalize``
    first (the student's here; the teacher is expected to come normalised
    from the main pass, and is normalised again only when ``normalize_teacher``
    is True). Computed in float32 so that it stays finite under AMP.

    Args:
        temperature (float): T. Defaults to 1.
        loss_weight (float): Defaults to 1.
        normalize (str): ``'none' | 'layernorm' | 'l2'``.
        amplitude (float): Scale after normalisation. Defaults to 1.
        normalize_teacher (bool): Normalise the teacher logits here too.
            Defaults to False.
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
        if temperature <= 0:
            raise ValueError(
                f'temperature={temperature!r} is invalid; '
                'allowed: a positive number'
            )
        self.temperature = temperature
        self.loss_weight = loss_weight
        self.normalize = check_normalize(normalize)
        self.amplitude = amplitude
        self.normalize_teacher = normalize_teacher

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor
    ) -> torch.Tensor:
        t = self.temperature
        student = normalize_logits(
            student.float(), self.normalize, self.amplitude
        )
        teacher = teacher.detach().float()
        if self.normalize_teacher:
            teacher = normalize_logits(teacher, self.normalize, self.amplitude)
        kl = F.kl_div(
            F.log_softmax(student / t, dim=-1),
            F.softmax(teacher / t, dim=-1),
            reduction='batchmean',
        )
        return self.loss_weight * t * t * kl
