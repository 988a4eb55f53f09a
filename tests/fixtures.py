"""Autouse fixtures shared by the test folders that train many small
models in one process (``tests/test_apis``, ``tests/test_matrix``); a
folder's ``conftest.py`` imports them to turn them on there."""

import pytest


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: small models on a busy 2-core machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def restore_default_scope():
    """The Runner and the upstream APIs (init_detector, init_model, ...)
    make their library the process's current default scope; remove the
    scopes a test created, so later tests find the registry they found
    before (e.g. an mmpretrain model built without a scope)."""
    from mmengine.registry import DefaultScope

    before = set(DefaultScope._instance_dict)
    yield
    for name in list(DefaultScope._instance_dict):
        if name not in before:
            del DefaultScope._instance_dict[name]
