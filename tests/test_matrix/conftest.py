"""Session-wide generated data of the config matrix, one folder per data
kind (see tests/test_matrix/data.py)."""

from pathlib import Path
from typing import Dict

import pytest

from ..fixtures import one_torch_thread, restore_default_scope  # noqa: F401
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
