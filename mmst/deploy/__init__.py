"""Deploying sub-networks: a member of the space as a standalone config +
checkpoint (:mod:`.export`), as an ONNX file checked against PyTorch
(:mod:`.onnx`) within a bound derived from float32 rounding
(:mod:`.rounding`); ``docs/analysis.md``, "Exporting a sub-network"."""

from .export import (
    build_model,
    export_model_subnet,
    export_subnet,
    subnet_config,
)
from .onnx import (
    ONNX_TASKS,
    check_onnx_task,
    eval_inputs,
    export_onnx,
    onnx_parity,
)
from .rounding import accumulation_length, network_rounding_bound

__all__ = [
    'build_model',
    'export_model_subnet',
    'export_subnet',
    'subnet_config',
    'ONNX_TASKS',
    'check_onnx_task',
    'eval_inputs',
    'export_onnx',
    'onnx_parity',
    'accumulation_length',
    'network_rounding_bound',
]
