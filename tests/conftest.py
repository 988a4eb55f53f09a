"""What every test folder needs, in one place.

- One torch thread in this process and in every subprocess it starts
  (``OMP_NUM_THREADS=1``): the suite runs two pytest workers on a 2-core
  machine (``tools/run_tests.sh``), and two threads of these small models
  spin against each other (measured 10-100x slower on a busy machine).
- The default scope restored after each test (the Runner and the upstream
  inference APIs make their library the process's default scope).
- Session-scoped data sets in the real formats, generated once per worker
  process: tiny COCO (instances, panoptic, person keypoints), tiny
  Cityscapes, tiny ImageNet-style folders, and the prepared Fashion-MNIST.
- The ``multiprocess`` marker: tests that start several processes
  (torchrun, dist_train.sh, a second venv). ``tools/run_tests.sh`` runs
  them after the others, one at a time, so that they have both cores.
"""

import os
from pathlib import Path
from typing import Dict

import pytest

os.environ['OMP_NUM_THREADS'] = '1'
os.environ['MKL_NUM_THREADS'] = '1'


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread, also after a test that changed it."""
    import torch

    yield
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def restore_default_scope():
    """Remove the default scopes a test created, so later tests find the
    registry they found before (e.g. an mmpretrain model built without a
    scope)."""
    from mmengine.registry import DefaultScope

    before = set(DefaultScope._instance_dict)
    yield
    for name in list(DefaultScope._instance_dict):
        if name not in before:
            del DefaultScope._instance_dict[name]


# -- session-scoped data in the real formats ------------------------------
@pytest.fixture(scope='session')
def tiny_coco(tmp_path_factory) -> Path:
    """Tiny COCO: instances, panoptic and person keypoints of 6 images."""
    from tests.test_downstream.data import make_coco

    return make_coco(tmp_path_factory.mktemp('coco'))


@pytest.fixture(scope='session')
def tiny_cityscapes(tmp_path_factory) -> Path:
    """Tiny Cityscapes: 4 images with train-id label maps."""
    from tests.test_downstream.data import make_cityscapes

    return make_cityscapes(tmp_path_factory.mktemp('cityscapes'))


@pytest.fixture(scope='session')
def data_kinds(
    tmp_path_factory, tiny_coco, tiny_cityscapes
) -> Dict[str, Path]:
    """Data kind (tests/test_matrix/data.py) -> its folder."""
    from tests.test_distributed.common import FMNIST_ROOT
    from tests.test_matrix.data import FOLDER_SIZES, make_folder_dataset

    tmp = tmp_path_factory.mktemp('folders')
    return dict(
        coco=tiny_coco,
        coco_panoptic=tiny_coco,
        coco_keypoints=tiny_coco,
        cityscapes=tiny_cityscapes,
        imagenet=make_folder_dataset(
            tmp / 'imagenet', FOLDER_SIZES['imagenet']
        ),
        cifar=make_folder_dataset(tmp / 'cifar', FOLDER_SIZES['cifar']),
        fashion_mnist=FMNIST_ROOT,
    )


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``--dist loadgroup``): the tests of a module
    that share a module-scoped fixture (a trained checkpoint, a torchrun
    job) run on one worker, so that the fixture is built once; the other
    tests are spread one by one."""
    for item in items:
        info = getattr(item, '_fixtureinfo', None)
        if info is None:
            continue
        shared = any(
            d.scope in ('module', 'class', 'package')
            for defs in info.name2fixturedefs.values()
            for d in defs
        )
        if shared:
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
