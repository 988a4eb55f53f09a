"""Registered ResNets that can be fixed at one sub-network, for evaluating
and deploying a trained sub-network with plain upstream tools, plus the
CIFAR-style depths (3 stages of basic blocks) of the loafing experiments."""

from typing import Optional, Sequence

import torch.nn as nn
from mmpretrain.models.backbones import ResNet, ResNet_CIFAR
from mmpretrain.models.backbones.resnet import BasicBlock

from mmst.registry import MODELS

from .subnet_backbone import fix_subnet

# CIFAR-style ResNets: 3 stages of n basic blocks (depth = 6n + 2).
CIFAR_DEPTHS = {
    d: (BasicBlock, ((d - 2) // 6,) * 3) for d in (8, 14, 20, 32, 44, 56, 110)
}


def keep_first_blocks(backbone: nn.Module, subnet: Sequence[int]) -> None:
    """Fix ``backbone`` in place at the sub-network keeping the first
    ``subnet[i]`` blocks of stage ``i`` (:func:`fix_subnet`, the mechanism
    of ``mmst.SubnetBackbone``: the skipped blocks become parameter-free
    identities under their own names).

    Raises:
        SettingError: ``subnet`` does not fit the stages
            (:func:`mmst.subnet.check_depths`).
    """
    fix_subnet(backbone, subnet)


class _ElasticMixin:
    arch_settings = {**ResNet.arch_settings, **CIFAR_DEPTHS}

    def _fix_subnet(self, subnet: Optional[Sequence[int]]) -> None:
        self.subnet = None
        if subnet is not None:
            fix_subnet(self, subnet)
            self.subnet = self.mmst_subnet


@MODELS.register_module()
class ElasticResNet(_ElasticMixin, ResNet):
    """mmpretrain's ResNet, optionally fixed at a sub-network.

    Args:
        subnet (Sequence[int], optional): Blocks kept per stage (the first
            ones), e.g. ``[2, 3, 5, 2]``. The parameter names stay those of
            the full network, so the full network's checkpoint loads (the
            skipped blocks' keys are reported as unexpected) and so does a
            checkpoint written by ``tools/model_converters/extract_subnet.py``.
            None: the full network (still elastic under ST).
        **kwargs: ``mmpretrain.models.ResNet`` arguments; ``depth`` may also
            be a CIFAR-style depth (8, 14, 20, 32, 44, 56, 110: 3 stages of
            basic blocks; set ``num_stages=3``).
    """

    def __init__(self, subnet: Optional[Sequence[int]] = None, **kwargs):
        super().__init__(**kwargs)
        self._fix_subnet(subnet)


@MODELS.register_module()
class ElasticResNet_CIFAR(_ElasticMixin, ResNet_CIFAR):
    """mmpretrain's ResNet_CIFAR (3x3 stem, no max-pool), optionally fixed
    at a sub-network; see :class:`ElasticResNet`."""

    def __init__(self, subnet: Optional[Sequence[int]] = None, **kwargs):
        super().__init__(**kwargs)
        self._fix_subnet(subnet)
