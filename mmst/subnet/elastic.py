"""Elastic depth: run a backbone as one of its sub-networks.

A sub-network keeps some blocks of each residual stage (:mod:`.space`); the
others are bypassed as identities for the duration of a context, so the
parameters, the state-dict keys and the module tree stay those of the full
network, and skipped blocks are not computed.
"""

from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Union

import torch.nn as nn

from .space import Subnet

StageSpec = Union[str, Sequence[str]]

_HOW_TO_DECLARE = (
    "declare them in the config, e.g. elastic_stages=['layer1', 'layer2'] "
    '(each a Sequential/ModuleList of residual blocks, relative to the '
    "backbone) or elastic_stages=[['blocks.0', 'blocks.1'], ...] (block "
    'paths per stage); blocks other than the first of a stage must keep '
    'their input shape'
)


def _identity(x, *args, **kwargs):
    return x


def _get(root: nn.Module, path: str) -> nn.Module:
    try:
        return root.get_submodule(path)
    except AttributeError as e:
        raise ValueError(
            f'elastic_stages: {path!r} is not a sub-module of '
            f'{type(root).__name__} ({e})'
        ) from None


def _mobilenet_v3_stages(backbone: nn.Module) -> List[List[nn.Module]]:
    """Each stage: a shape-changing block and the residual blocks after."""
    stages: List[List[nn.Module]] = []
    for name in backbone.layers:
        block = getattr(backbone, name)
        if getattr(block, 'with_res_shortcut', False) and stages:
            stages[-1].append(block)
        else:
            stages.append([block])
    # Stages without residual blocks have nothing to sample.
    return [s for s in stages if len(s) > 1]


def find_stages(
    backbone: nn.Module, stages: Optional[Sequence[StageSpec]] = None
) -> List[List[nn.Module]]:
    """The residual stages of ``backbone`` as lists of blocks.

    Args:
        backbone (nn.Module): A ResNet-family backbone (mmpretrain, mmdet,
            mmseg, mmpose: anything with ``res_layers``), mmpretrain's
            MobileNetV3 or VisionTransformer (its layers as one stage), or
            any backbone when ``stages`` is given.
        stages (Sequence, optional): Explicit declaration: per stage, the
            path of a container of blocks, or the list of block paths.

    Returns:
        list[list[nn.Module]]: Blocks per stage, in execution order.
    """
    if stages is not None:
        found = []
        for spec in stages:
            if isinstance(spec, str):
                found.append(list(_get(backbone, spec).children()))
            else:
                found.append([_get(backbone, p) for p in spec])
        if not found or any(not s for s in found):
            raise ValueError(
                f'elastic_stages={list(stages)!r} declares an '
                'empty stage; ' + _HOW_TO_DECLARE
            )
        return found
    if isinstance(getattr(backbone, 'res_layers', None), (list, tuple)):
        return [list(getattr(backbone, n)) for n in backbone.res_layers]
    layers = getattr(backbone, 'layers', None)
    if (
        isinstance(layers, (list, tuple))
        and layers
        and all(isinstance(n, str) for n in layers)
    ):
        mb_stages = _mobilenet_v3_stages(backbone)
        if mb_stages:
            return mb_stages
    if isinstance(layers, (nn.ModuleList, nn.Sequential)) and len(layers):
        return [list(layers)]  # transformer encoder layers: one stage
    raise TypeError(
        f'mmst cannot find the residual stages of '
        f'{type(backbone).__name__}; ' + _HOW_TO_DECLARE
    )


class ElasticDepth:
    """Runs a backbone at a given sub-network.

    Args:
        backbone (nn.Module): The backbone (its parameters are shared).
        stages (Sequence, optional): Explicit stage declaration, see
            :func:`find_stages`.
    """

    def __init__(
        self, backbone: nn.Module, stages: Optional[Sequence[StageSpec]] = None
    ) -> None:
        self.stages = find_stages(backbone, stages)
        self.backbone_name = type(backbone).__name__
        # ResNet-family ``frozen_stages=k`` freezes exactly the first k of
        # these stages; other backbones count their own units (ViT layers,
        # MobileNetV3 layers), which are not mmst's stages.
        self.stages_are_res_layers = stages is None and isinstance(
            getattr(backbone, 'res_layers', None), (list, tuple)
        )

    @property
    def stage_depths(self) -> List[int]:
        return [len(s) for s in self.stages]

    def validate(self, subnet: Subnet) -> None:
        if len(subnet) != len(self.stages) or any(
            not kept
            or kept[0] != 0
            or kept[-1] >= len(stage)
            or list(kept) != sorted(set(kept))
            for kept, stage in zip(subnet, self.stages)
        ):
            raise ValueError(
                f'subnet={subnet!r} does not fit {self.backbone_name} with '
                f'stage depths {self.stage_depths}: each stage keeps its '
                'first block and sorted indices within the stage'
            )

    @contextmanager
    def activate(self, subnet: Optional[Subnet]) -> Iterator[None]:
        """Within the context the backbone runs as ``subnet`` (``None``:
        the full network)."""
        if subnet is None:
            yield
            return
        self.validate(subnet)
        skipped = [
            block
            for kept, stage in zip(subnet, self.stages)
            for i, block in enumerate(stage)
            if i not in kept
        ]
        # An instance attribute shadows the class's forward, so calls through
        # nn.Module.__call__ (hooks included) return the input unchanged.
        for block in skipped:
            block.forward = _identity
        try:
            yield
        finally:
            for block in skipped:
                del block.forward
