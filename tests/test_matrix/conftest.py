"""Session-wide generated data of the config matrix, one folder per data
kind (see tests/test_matrix/data.py)."""

from pathlib import Path
from typing import Dict

import pytest

from ..test_distributed.common import FMNIST_ROOT
from ..test_downstream.data import make_cityscapes, make_coco
from .data import FOLDER_SIZES, make_folder_dataset


@pytest.fixture(scope='session')
def matrix_data(tmp_path_factory) -> Dict[str, Path]:
    """Data kind -> generated folder (Fashion-MNIST: the prepared one,
    required by :func:`data.matrix_config` when a config uses it)."""
    tmp = tmp_path_factory.mktemp('matrix_data')
    coco = make_coco(tmp / 'coco')
    return dict(
        coco=coco,
        coco_panoptic=coco,
        coco_keypoints=coco,
        cityscapes=make_cityscapes(tmp / 'cityscapes'),
        imagenet=make_folder_dataset(
            tmp / 'imagenet', FOLDER_SIZES['imagenet']
        ),
        cifar=make_folder_dataset(tmp / 'cifar', FOLDER_SIZES['cifar']),
        fashion_mnist=FMNIST_ROOT,
    )


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
