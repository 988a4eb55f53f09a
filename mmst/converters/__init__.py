"""Checkpoint converters and checkpoint I/O (no registration, no task
library needed)."""

from .checkpoint_io import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    StateDictMismatch,
    check_readable,
    load_checkpoint,
    load_runner_checkpoint,
    load_state_dict,
    read_checkpoint,
    state_dict_of,
)
from .st_weights import (
    ConversionError,
    convert_checkpoint,
    convert_st_state_dict,
    load_authors_checkpoint,
    save_checkpoint_atomic,
)

__all__ = [
    'CheckpointError',
    'CheckpointMismatchError',
    'CheckpointNotFoundError',
    'StateDictMismatch',
    'check_readable',
    'load_checkpoint',
    'load_runner_checkpoint',
    'load_state_dict',
    'read_checkpoint',
    'state_dict_of',
    'ConversionError',
    'convert_checkpoint',
    'convert_st_state_dict',
    'load_authors_checkpoint',
    'save_checkpoint_atomic',
]
