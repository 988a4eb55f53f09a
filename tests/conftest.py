"""What every test folder needs, in one place.

- One torch thread in this process and in every subprocess it starts
  (``OMP_NUM_THREADS=1``): the suite runs two pytest workers on a 2-core
  machine (``tools/run_tests.sh``), and two threads of these small models
  spin against each other (measured 10-100x slower on a busy machine).
- MMEngine's global instances a test created (default scopes, message
  hubs, visualizers) removed after it, so that no test depends on which
  tests ran before it in the same worker.
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
def restore_mmengine_globals():
    """Remove the MMEngine global instances a test created: default scopes
    (the Runner and the upstream inference APIs make their library the
    process's default scope), message hubs (an ST model's ``train_step``
    outside a runner reads the iteration of the latest hub, so a Runner of
    an earlier test would change the sub-networks it samples) and
    visualizers (reused by name: mmdet names its own 'visualizer'). Later
    tests then find what they would find in a fresh process."""
    from tests.test_distributed.common import (
        mmengine_instances,
        remove_new_instances,
    )

    before = mmengine_instances()
    yield
    remove_new_instances(before)


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


# -- multi-process scenarios ----------------------------------------------
@pytest.fixture(scope='session')
def dist_scenarios(tmp_path_factory) -> Dict[str, Path]:
    """The test scripts that need 2 gloo ranks, run in ONE torchrun launch
    (tests/test_distributed/scripts/scenarios.py): the ST parity training
    (st_parity.py), BN re-estimation across ranks (bn_recal_dist.py),
    MMEngine's Runner with DDP (ddp_train.py), and the sub-network
    sequence with ``diff_rank_seed`` and a resumed Runner
    (subnet_sequence.py). Scenario -> its output folder."""
    from tests.test_core.common import make_folder_dataset
    from tests.test_distributed.common import PARITY_MODES, run_scenarios

    root = tmp_path_factory.mktemp('dist_scenarios')
    tests = Path(__file__).parent
    out = {
        name: root / name
        for name in (
            'st_parity',
            'bn_recal',
            'ddp_train',
            'sequence',
            'resume',
        )
    }
    for folder in out.values():
        folder.mkdir()
    seq = out['sequence']
    data_root = make_folder_dataset(seq / 'data', per_class=4)
    runs = [
        # no Runner: before the scenarios that create MMEngine's globals
        [tests / 'test_distributed/scripts/st_parity.py', out['st_parity']]
        + ['--modes', ','.join(PARITY_MODES)],
        [tests / 'test_engine/scripts/bn_recal_dist.py', out['bn_recal']],
        [tests / 'test_foundation/scripts/ddp_train.py', out['ddp_train']],
        # 12 images, 2 ranks x 3 per batch: 2 iterations per epoch
        [tests / 'test_distributed/scripts/subnet_sequence.py']
        + [seq / 'full', data_root, seq / 'full.json', '--diff-rank-seed']
        + ['--then-resume', seq / 'resumed', seq / 'full' / 'epoch_1.pth']
        + [seq / 'resumed.json'],
    ]
    runs += exact_resume_runs(out['resume'])
    run_scenarios(runs, cwd=root, timeout=900)
    return out


def exact_resume_runs(folder: Path) -> list:
    """tools/train.py on the Fashion-MNIST ST++ config with 2 ranks (each
    its own seed): 2 epochs uninterrupted (``full``); stopped after epoch 1
    (``resumed``, as an interruption after epoch_1.pth), then ``--resume``
    in the same work dir."""
    from tests.test_distributed.common import REPO, require_fashion_mnist

    root = require_fashion_mnist()
    config = REPO / 'configs/mmpretrain/fashion_mnist/resnet20_stpp_fmnist.py'
    imports = ['mmst', 'tests.test_engine.fault_points']
    stop = [dict(type='StopAfterEpoch', epoch=1)]
    for name, hooks in (('full', []), ('stop', stop)):
        (folder / f'{name}.py').write_text(
            f'_base_ = [{str(config)!r}]\n'
            f'custom_imports = dict(imports={imports!r})\n'
            f'custom_hooks = {hooks!r}\n'
        )
    # 64 images, 2 ranks x 16 per batch: 2 iterations per epoch
    options = [
        '--launcher',
        'pytorch',
        '--cfg-options',
        'train_cfg.max_epochs=2',
        'randomness.diff_rank_seed=True',
        'train_dataloader.dataset.indices=64',
        'train_dataloader.batch_size=16',
        'val_dataloader.dataset.indices=32',
        'val_cfg.bn_recal_images=32',
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
    ]
    train = REPO / 'tools/train.py'
    full, resumed = folder / 'full', folder / 'resumed'
    return [
        [train, folder / 'full.py', '--work-dir', full, *options],
        [train, folder / 'stop.py', '--work-dir', resumed, *options],
        [train, folder / 'full.py', '--work-dir', resumed, '--resume']
        + options,
    ]
