"""Checkpoint converters (no registration, no task library needed)."""

from .st_weights import (
    ConversionError,
    convert_checkpoint,
    convert_st_state_dict,
    load_authors_checkpoint,
    save_checkpoint_atomic,
)

__all__ = [
    'ConversionError',
    'convert_checkpoint',
    'convert_st_state_dict',
    'load_authors_checkpoint',
    'save_checkpoint_atomic',
]
