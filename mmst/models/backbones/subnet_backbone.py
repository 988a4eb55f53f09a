"""Any backbone that mmst runs elastically, fixed at one sub-network: the
deployable form of a trained sub-network (``docs/analysis.md``, "Exporting
a sub-network").

``mmst.SubnetBackbone`` builds the original backbone from its config and
replaces each block the sub-network skips by a parameter-free
:class:`SkippedBlock` (which returns its input, exactly as
:class:`mmst.subnet.ElasticDepth` bypasses it during training and
evaluation). So:

- the kept blocks' parameters and buffers keep their original state-dict
  keys (``backbone.layer1.0.conv1.weight``, ``backbone.layers.2.ln1.weight``
  ...), and the skipped blocks' keys are gone: a checkpoint written by
  :func:`mmst.deploy.export_subnet` loads with ``strict=True``, and the
  full network's checkpoint loads too (the skipped keys are reported as
  unexpected);
- the module is the original backbone class (``ResNet``, ``MobileNetV3``,
  ``VisionTransformer``, mmdet / mmseg / mmpose ResNets ...) with the same
  forward, so it computes exactly what the sub-network computes under
  ``ElasticDepth``, and it traces (ONNX) like the original;
- the stages are found as ``ElasticDepth`` finds them
  (:func:`mmst.subnet.find_stages`), or from ``elastic_stages`` as
  declared for ``mmst.StimulativeTraining``.
"""

from typing import Optional, Sequence

import torch.nn as nn

from mmst.registry import MODELS
from mmst.subnet.discovery import RETURNS_INPUTS
from mmst.subnet.elastic import StageSpec, find_stages
from mmst.subnet.space import check_depths


class SkippedBlock(nn.Module):
    """A block that a fixed sub-network skips: returns its first input
    unchanged (``returns_inputs``: all of its positional inputs, for blocks
    like MViT's whose output mirrors them); no parameters, no buffers."""

    def __init__(self, returns_inputs: bool = False) -> None:
        super().__init__()
        self.returns_inputs = returns_inputs

    def forward(self, x, *args, **kwargs):
        return (x, *args) if self.returns_inputs else x


def fix_subnet(
    backbone: nn.Module,
    subnet: Sequence[int],
    elastic_stages: Optional[Sequence[StageSpec]] = None,
) -> nn.Module:
    """Fix ``backbone`` (in place) at the ordered sub-network keeping the
    first ``subnet[i]`` blocks of stage ``i``: every later block of the
    stage is replaced by a :class:`SkippedBlock` under its own name.

    Args:
        backbone (nn.Module): A backbone :class:`mmst.subnet.ElasticDepth`
            can run.
        subnet (Sequence[int]): Blocks kept per stage, e.g. ``[2, 3, 5, 2]``.
        elastic_stages (Sequence, optional): Explicit stage declaration
            (:func:`mmst.subnet.find_stages`).

    Returns:
        nn.Module: ``backbone``, with ``mmst_subnet`` (the depths) set.

    Raises:
        ValueError: ``subnet`` does not fit the stages, or a block is not a
            sub-module of ``backbone``.
        TypeError: The stages cannot be found (declare ``elastic_stages``).
    """
    stages = find_stages(backbone, elastic_stages)
    depths = check_depths(subnet, [len(s) for s in stages])
    names = {id(m): name for name, m in backbone.named_modules() if name}
    for k, stage in zip(depths, stages):
        for block in stage[k:]:
            name = names.get(id(block))
            if name is None:
                raise ValueError(
                    f'a block of {type(backbone).__name__} is not one of '
                    'its sub-modules; declare elastic_stages'
                )
            parent_name, _, attr = name.rpartition('.')
            parent = (
                backbone.get_submodule(parent_name)
                if parent_name
                else backbone
            )
            parent._modules[attr] = SkippedBlock(block in RETURNS_INPUTS)
    backbone.mmst_subnet = depths
    return backbone


def build_subnet_backbone(
    backbone: dict,
    subnet: Sequence[int],
    elastic_stages: Optional[Sequence[StageSpec]] = None,
) -> nn.Module:
    """``type='mmst.SubnetBackbone'``: build ``backbone`` (its config, in
    the caller's default scope) and fix it at ``subnet``
    (:func:`fix_subnet`).

    Args:
        backbone (dict): The original backbone config (any type that
            ``ElasticDepth`` can run, or any with ``elastic_stages``).
        subnet (Sequence[int]): Blocks kept per stage (the first ones).
        elastic_stages (Sequence, optional): Explicit stage declaration.

    Returns:
        nn.Module: The original backbone class, fixed at ``subnet``.
    """
    if not isinstance(backbone, dict):
        raise TypeError(
            f'SubnetBackbone: backbone={type(backbone).__name__} is '
            'invalid; allowed: the original backbone config (a dict)'
        )
    return fix_subnet(MODELS.build(backbone), subnet, elastic_stages)


MODELS.register_module(name='SubnetBackbone', module=build_subnet_backbone)
