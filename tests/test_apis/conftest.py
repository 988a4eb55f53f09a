"""Generated data sets of the inference API tests."""

import pytest

from ..fixtures import one_torch_thread, restore_default_scope  # noqa: F401
from ..test_distributed.common import FMNIST_ROOT
from ..test_downstream.data import make_cityscapes, make_coco
from ..test_matrix.data import FOLDER_SIZES, make_folder_dataset


@pytest.fixture(scope='session')
def api_data(tmp_path_factory) -> dict:
    """Data folder of each kind (see tests/test_matrix/data.py)."""
    tmp = tmp_path_factory.mktemp('api_data')
    coco = make_coco(tmp / 'coco')
    return dict(
        coco=coco,
        coco_keypoints=coco,
        cityscapes=make_cityscapes(tmp / 'cityscapes'),
        imagenet=make_folder_dataset(
            tmp / 'imagenet', FOLDER_SIZES['imagenet']
        ),
        fashion_mnist=FMNIST_ROOT,
    )
