"""Small helpers shared across mmst."""

import importlib.util


def has_package(name: str) -> bool:
    """Whether an optional task library (mmdet, mmseg, ...) is installed."""
    return importlib.util.find_spec(name) is not None
