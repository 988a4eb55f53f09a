from .kl_divergence import KLDivergenceLoss, normalize_logits

__all__ = ['KLDivergenceLoss', 'normalize_logits']
