"""Session-wide generated data sets of the downstream tests."""

from pathlib import Path

import pytest

from .data import make_cityscapes, make_coco


@pytest.fixture(scope='session')
def tiny_coco(tmp_path_factory) -> Path:
    """Tiny COCO: instances, panoptic and person keypoints of 6 images."""
    return make_coco(tmp_path_factory.mktemp('coco'))


@pytest.fixture(scope='session')
def tiny_cityscapes(tmp_path_factory) -> Path:
    """Tiny Cityscapes: 4 images with train-id label maps."""
    return make_cityscapes(tmp_path_factory.mktemp('cityscapes'))


def data_root(kind: str, tiny_coco: Path, tiny_cityscapes: Path) -> Path:
    return tiny_cityscapes if kind == 'cityscapes' else tiny_coco


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine two threads of these
    small models spin against each other (measured 10-100x slower)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
