"""Deploying sub-networks: a member of the space as a standalone config +
checkpoint (:mod:`.export`), as an ONNX file checked against PyTorch
(:mod:`.onnx`) within a bound derived from float32 rounding
(:mod:`.rounding`); ``docs/analysis.md``, "Exporting a sub-network"; the
measured members of a depth menu in one family checkpoint
(:mod:`.family`, ``docs/family.md``) and its members in ONNX
(:mod:`.family_onnx`)."""

from .export import (
    build_model,
    export_model_subnet,
    export_subnet,
    subnet_config,
)
from .family import (
    FAMILY_FORMAT,
    FAMILY_KEY,
    family_members,
    family_menu,
    read_family,
    write_family,
)
from .family_onnx import (
    export_family_checkpoint_onnx,
    export_family_onnx,
    family_onnx_latency,
    family_onnx_parity,
    merge_member_graphs,
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
    'FAMILY_FORMAT',
    'FAMILY_KEY',
    'family_members',
    'family_menu',
    'read_family',
    'write_family',
    'export_family_checkpoint_onnx',
    'export_family_onnx',
    'family_onnx_latency',
    'family_onnx_parity',
    'merge_member_graphs',
    'ONNX_TASKS',
    'check_onnx_task',
    'eval_inputs',
    'export_onnx',
    'onnx_parity',
    'accumulation_length',
    'network_rounding_bound',
]
