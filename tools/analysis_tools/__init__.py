"""Tools of this folder; see tools/__init__.py."""
