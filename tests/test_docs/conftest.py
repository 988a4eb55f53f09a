# README's ST block is built in mmpretrain's default scope: remove the
# scopes a test created (tests/fixtures.py).
from tests.fixtures import restore_default_scope  # noqa: F401
