"""Helpers for tests and demos: tiny data sets in the real formats
(:mod:`.tiny_data`); README's one-step ST snippet checked on the upstream
libraries' own configs (:mod:`.upstream`) and the backbones mmst finds
stages in (:mod:`.coverage`, the table of docs/backbones.md), each
imported on its own: they need the task libraries)."""

from .tiny_data import (
    make_tiny_cityscapes,
    make_tiny_coco,
    tiny_coco_cfg_options,
)

__all__ = ['make_tiny_coco', 'make_tiny_cityscapes', 'tiny_coco_cfg_options']
