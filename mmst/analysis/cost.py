"""Cost of a sub-network: parameters it uses and FLOPs of one forward."""

import inspect
import logging
from contextlib import nullcontext
from typing import List, Optional, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmst.subnet import ElasticDepth
from mmst.subnet.space import Subnet

from .sweep import quiet_logs

#: How :func:`count_flops` counts.
FLOPS_CONVENTION = (
    "mmengine's FlopAnalyzer (fvcore convention: one multiply-add = 1 FLOP; "
    'BN, ReLU and additions not counted), batch of one at the input size'
)


def count_params(
    arch: nn.Module, elastic: ElasticDepth, subnet: Optional[Subnet]
) -> int:
    """Parameters of ``arch`` that ``subnet`` uses (all of them for
    ``subnet=None``): the total less those of the blocks it skips."""
    skipped = [
        p.numel()
        for kept, stage in zip(subnet or (), elastic.stages)
        for i, block in enumerate(stage)
        if i not in kept
        for p in block.parameters()
    ]
    return sum(p.numel() for p in arch.parameters()) - sum(skipped)


class TensorOutputs(nn.Module):
    """One input in, tensors out (FLOPs counting, ONNX export):
    ``model(inputs, None, 'tensor')``, or ``model.extract_feat(inputs)``
    with ``features=True``; with ``flatten`` a tuple of tensors
    (:func:`flatten_outputs`: the ONNX graph's outputs, in order)."""

    def __init__(
        self, model: nn.Module, flatten: bool = True, features: bool = False
    ) -> None:
        super().__init__()
        self.model, self.flatten, self.features = model, flatten, features

    def forward(self, inputs: torch.Tensor):
        if self.features:
            outputs = self.model.extract_feat(inputs)
        else:
            outputs = self.model(inputs, None, 'tensor')
        return tuple(flatten_outputs(outputs)) if self.flatten else outputs


def flatten_outputs(outputs) -> List[torch.Tensor]:
    """Tensors of a (nested) tuple / list / dict of tensors, in order.

    Raises:
        TypeError: A leaf is not a tensor.
    """
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if isinstance(outputs, (list, tuple)):
        return [t for o in outputs for t in flatten_outputs(o)]
    if isinstance(outputs, dict):
        return [t for k in outputs for t in flatten_outputs(outputs[k])]
    raise TypeError(
        f"mode='tensor' output of type {type(outputs).__name__} cannot be "
        'exported to ONNX; allowed: tensors and (nested) tuples / lists / '
        'dicts of tensors'
    )


@torch.no_grad()
def count_flops(
    arch: nn.Module,
    input_shape: Sequence[int],
    elastic: Optional[ElasticDepth] = None,
    subnet: Optional[Subnet] = None,
) -> Optional[int]:
    """FLOPs (:data:`FLOPS_CONVENTION`) of one forward (``mode='tensor'``)
    of ``arch`` at ``input_shape`` (C, H, W; batch of one) run as
    ``subnet``; None (with a logged warning) where mmengine cannot trace it.
    """
    from mmengine.analysis import FlopAnalyzer

    param = next(arch.parameters(), None)
    device = param.device if param is not None else 'cpu'
    inputs = torch.zeros((1, *input_shape), device=device)
    was_training = arch.training
    arch.eval()
    traced = arch
    if 'mode' in inspect.signature(arch.forward).parameters:
        traced = TensorOutputs(arch, flatten=False)

    active = nullcontext() if elastic is None else elastic.activate(subnet)
    try:
        with quiet_logs(logging.ERROR), active:
            analyzer = FlopAnalyzer(traced, (inputs,))
            analyzer.unsupported_ops_warnings(False)
            return int(analyzer.uncalled_modules_warnings(False).total())
    except Exception as e:  # tracing is best effort
        name, error = type(arch).__name__, f'{type(e).__name__}: {e}'
        message = f'cannot count FLOPs of {name} ({error})'
        print_log(message, 'current', logging.WARNING)
        return None
    finally:
        arch.train(was_training)
