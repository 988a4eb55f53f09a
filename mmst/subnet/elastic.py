"""Elastic depth: run a backbone as one of its sub-networks.

A sub-network keeps some blocks of each residual stage (:mod:`.space`); the
others are bypassed as identities for the duration of a context, so the
parameters, the state-dict keys and the module tree stay those of the full
network, and skipped blocks are not computed.
"""

from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Union

import torch.nn as nn

from .discovery import (
    StageCheckError,
    check_stages,
    discover_stages,
    skip_forward,
)
from .space import Subnet

StageSpec = Union[str, Sequence[str]]

_HOW_TO_DECLARE = (
    "declare them in the config, e.g. elastic_stages=['layer1', 'layer2'] "
    '(each a Sequential/ModuleList of residual blocks, relative to the '
    "backbone) or elastic_stages=[['blocks.0', 'blocks.1'], ...] (block "
    'paths per stage); blocks other than the first of a stage must keep '
    'their input shape'
)


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
    backbone: nn.Module,
    stages: Optional[Union[Sequence[StageSpec], dict]] = None,
) -> List[List[nn.Module]]:
    """The residual stages of ``backbone`` as lists of blocks.

    ResNet-family backbones (``res_layers``: mmpretrain, mmdet, mmseg,
    mmpose), mmpretrain's MobileNetV3 and VisionTransformer-style ``layers``
    (one stage) are known. Any other backbone's stages are discovered and
    checked with one dry forward (:func:`mmst.subnet.discovery.
    discover_stages`): containers of repeated blocks whose blocks after
    the first keep their input shape and are residual. A declaration is
    checked the same way (:func:`mmst.subnet.discovery.check_stages`).

    Args:
        backbone (nn.Module): The backbone (built; its weights are not
            changed).
        stages (Sequence | dict, optional): Explicit declaration: per
            stage, the path of a container of blocks, or the list of block
            paths; or ``dict(stages=[...], allow_non_residual=True)`` to
            keep blocks that are not residual on purpose.

    Returns:
        list[list[nn.Module]]: Blocks per stage, in execution order.

    Raises:
        TypeError: No stages found (says how to declare them).
        ValueError: A declared path is not a sub-module, a stage is empty,
            or a declared block fails a check
            (:class:`~mmst.subnet.discovery.StageCheckError`, naming it).
    """
    allow_non_residual = False
    if isinstance(stages, dict):
        unknown = set(stages) - {'stages', 'allow_non_residual'}
        if unknown or 'stages' not in stages:
            raise ValueError(
                f'elastic_stages={stages!r} is invalid; allowed: a list of '
                'stages, or dict(stages=[...], allow_non_residual=bool)'
            )
        allow_non_residual = bool(stages.get('allow_non_residual', False))
        stages = stages['stages']
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
        check_stages(backbone, found, allow_non_residual=allow_non_residual)
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
        # transformer encoder layers: one stage, if they pass the checks
        # (EfficientNet's ``layers``, for one, are stages, not blocks)
        try:
            check_stages(backbone, [list(layers)])
            return [list(layers)]
        except StageCheckError:
            pass
    try:
        discovered = discover_stages(backbone)
    except StageCheckError as e:
        raise TypeError(
            f'mmst cannot find the residual stages of '
            f'{type(backbone).__name__} ({e}); ' + _HOW_TO_DECLARE
        ) from None
    if discovered:
        return [blocks for _, blocks in discovered]
    raise TypeError(
        f'mmst cannot find the residual stages of '
        f'{type(backbone).__name__} (no container of residual blocks that '
        'keep their input shape: see docs/backbones.md); ' + _HOW_TO_DECLARE
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

    @property
    def stage_depths(self) -> List[int]:
        return [len(s) for s in self.stages]

    def frozen_prefix(self) -> List[int]:
        """Per stage, how many leading blocks are frozen: they have
        parameters and none requires a gradient (what a backbone's
        ``frozen_stages`` does when it is built, whatever units it counts:
        ResNet stages, ConvNeXt / Swin stages, ViT encoder layers).
        Sub-networks never skip them (:class:`StimulativeTraining` keeps
        the space's depths at or above these counts)."""
        counts = []
        for stage in self.stages:
            count = 0
            for block in stage:
                params = list(block.parameters())
                if not params or any(p.requires_grad for p in params):
                    break
                count += 1
            counts.append(count)
        return counts

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
            block.forward = skip_forward(block)
        try:
            yield
        finally:
            for block in skipped:
                del block.forward
