"""MMEngine's Runner resumes from its own checkpoints under torch>=2.6.

torch >= 2.6 loads with ``weights_only=True`` by default and MMEngine 0.10.7
calls ``torch.load(filename, map_location=...)`` without ``weights_only``.
``import mmst`` allow-lists the globals MMEngine checkpoints hold (see
:mod:`mmst.engine.safe_globals`), so resuming works without
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``.
"""

import contextlib
import os
import os.path as osp
import pickle
from typing import Dict, Iterator, List, Optional

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn
from torch.utils.data import Dataset

import mmst  # noqa: F401  (allow-lists the checkpoint globals)
from mmst.engine import allow_mmengine_checkpoint_globals
from mmst.engine.safe_globals import (
    HISTORY_BUFFER_STATISTICS,
    checkpoint_getattr,
)

NO_WEIGHTS_ONLY_ENV = 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'


class ToyRegressor(BaseModel):
    """A two-layer MLP regressing the sum of its 4 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(
        self,
        inputs: torch.Tensor,
        targets: Optional[torch.Tensor] = None,
        mode: str = 'tensor',
    ):
        """Run the network.

        Args:
            inputs (torch.Tensor): Inputs of shape ``(N, 4)``.
            targets (torch.Tensor, optional): Targets of shape ``(N, 1)``.
            mode (str): ``'loss'``, ``'predict'`` or ``'tensor'``.

        Returns:
            dict | list | torch.Tensor: Losses, per-sample predictions or the
            raw outputs.
        """
        out = self.net(inputs)
        if mode == 'loss':
            return dict(loss=F.mse_loss(out, targets))
        if mode == 'predict':
            return [dict(pred=o, target=t) for o, t in zip(out, targets)]
        return out


class ToyDataset(Dataset):
    """32 random inputs and their sums, with a settable ``metainfo``.

    Args:
        metainfo (dict, optional): What ``metainfo`` returns (MMEngine stores
            it in every checkpoint as ``meta['dataset_meta']``).
    """

    def __init__(self, metainfo: Optional[dict] = None) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(32, 4, generator=gen)
        self.y = self.x.sum(dim=1, keepdim=True)
        self._metainfo = (
            metainfo if metainfo is not None else dict(classes=('sum',))
        )

    @property
    def metainfo(self) -> dict:
        return self._metainfo

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx: int) -> Dict[str, torch.Tensor]:
        return dict(inputs=self.x[idx], targets=self.y[idx])


class ToyMSE(BaseMetric):
    """Mean squared error, returned as a numpy float64 like mmseg's and
    mmpose's metrics (so the best score in the message hub is a numpy
    scalar)."""

    default_prefix = 'toy'

    def process(self, data_batch, data_samples: List[dict]) -> None:
        for sample in data_samples:
            err = (sample['pred'] - sample['target']).pow(2).sum()
            self.results.append(float(err))

    def compute_metrics(self, results: list) -> Dict[str, np.float64]:
        return dict(mse=np.float64(np.mean(results)))


class Interrupted(RuntimeError):
    """Raised by :class:`InterruptAfterEpoch`."""


class InterruptAfterEpoch(Hook):
    """Stop training like a crash would, after the checkpoint of ``epoch``
    is written (``LOWEST`` runs after the ``CheckpointHook``).

    Args:
        epoch (int): The 1-based epoch after which to stop.
    """

    priority = 'LOWEST'

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def after_train_epoch(self, runner) -> None:
        if runner.epoch + 1 == self.epoch:
            raise Interrupted(f'stopped after epoch {self.epoch}')


def _dataloader(shuffle: bool, metainfo: Optional[dict] = None) -> dict:
    return dict(
        dataset=ToyDataset(metainfo),
        batch_size=4,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=shuffle, seed=0),
        collate_fn=dict(type='default_collate'),
    )


def _build_runner(
    work_dir: str,
    name: str,
    max_epochs: int,
    resume: bool = False,
    metainfo: Optional[dict] = None,
    interrupt_after: Optional[int] = None,
) -> Runner:
    """A real Runner: SGD with momentum, an iteration-based warm-up and an
    epoch-based step schedule, validation with ``save_best`` every epoch and
    a checkpoint every epoch.

    An interrupted run must use the same ``max_epochs`` as the run it is
    compared with: MMEngine sets a scheduler's missing ``end`` to
    ``max_epochs`` and the checkpoint keeps it, so a "first 2 of 4 epochs"
    run with ``max_epochs=2`` resumes with a different LR schedule.
    """
    custom_hooks = []
    if interrupt_after is not None:
        custom_hooks.append(InterruptAfterEpoch(interrupt_after))
    # the model is built before Runner applies ``randomness``
    torch.manual_seed(0)
    model = ToyRegressor()
    return Runner(
        model=model,
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=_dataloader(True, metainfo),
        val_dataloader=_dataloader(False, metainfo),
        val_evaluator=[ToyMSE()],
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs, val_interval=1),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.02, momentum=0.9)),
        param_scheduler=[
            dict(
                type='LinearLR',
                start_factor=0.1,
                by_epoch=False,
                begin=0,
                end=6,
            ),
            dict(
                type='MultiStepLR', by_epoch=True, milestones=[2, 3], gamma=0.5
            ),
        ],
        default_hooks=dict(
            checkpoint=dict(
                type='CheckpointHook',
                interval=1,
                save_best='toy/mse',
                rule='less',
            ),
            logger=dict(type='LoggerHook', interval=4),
        ),
        custom_hooks=custom_hooks,
        randomness=dict(seed=0),
        resume=resume,
        log_level='WARNING',
    )


def _params(runner: Runner) -> Dict[str, torch.Tensor]:
    return {
        k: v.detach().clone() for k, v in runner.model.state_dict().items()
    }


def _load_weights_only(path: str) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)


@contextlib.contextmanager
def _without_safe_globals() -> Iterator[None]:
    """Empty torch's allow-list of user globals; restore it on exit."""
    saved = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(saved)


@pytest.fixture
def no_weights_only_override(monkeypatch):
    """Make sure weights-only loading is not switched off globally."""
    monkeypatch.delenv(NO_WEIGHTS_ONLY_ENV, raising=False)
    monkeypatch.delenv('TORCH_FORCE_WEIGHTS_ONLY_LOAD', raising=False)


@pytest.fixture
def torch_load_calls(monkeypatch) -> List[dict]:
    """Record the arguments of every ``torch.load`` call (still loads)."""
    calls: List[dict] = []
    real_load = torch.load

    def recording_load(f, *args, **kwargs):
        calls.append(dict(f=f, args=args, kwargs=kwargs))
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, 'load', recording_load)
    return calls


def test_allow_list_is_idempotent():
    first = allow_mmengine_checkpoint_globals()
    before = set(map(repr, torch.serialization.get_safe_globals()))
    second = allow_mmengine_checkpoint_globals()
    after = set(map(repr, torch.serialization.get_safe_globals()))
    assert first == second
    assert before == after
    assert set(map(repr, first)) <= after


def test_other_numpy_major_version_names_load(tmp_path):
    """numpy 1 pickles ``_reconstruct`` / ``scalar`` as
    ``numpy.core.multiarray.*`` and numpy 2 as ``numpy._core.multiarray.*``;
    checkpoints written under either version load under the other."""
    from mmst.engine.safe_globals import _reconstruct

    here = _reconstruct.__module__.encode()
    other = (
        b'numpy._core.multiarray'
        if here == b'numpy.core.multiarray'
        else b'numpy.core.multiarray'
    )
    path = tmp_path / 'numpy_names.pth'
    values = dict(array=np.arange(4, dtype=np.float32), scalar=np.float64(2.5))
    # the legacy (non-zip) format is one plain pickle stream, so the module
    # names can be rewritten in place (GLOBAL opcodes end with a newline)
    torch.save(values, path, _use_new_zipfile_serialization=False)
    raw = path.read_bytes()
    assert here + b'\n' in raw
    path.write_bytes(raw.replace(here + b'\n', other + b'\n'))
    assert here + b'\n' not in path.read_bytes()

    loaded = _load_weights_only(str(path))

    np.testing.assert_array_equal(loaded['array'], values['array'])
    assert loaded['scalar'] == values['scalar']


def test_resume_matches_uninterrupted_run(
    tmp_path, no_weights_only_override, torch_load_calls
):
    assert NO_WEIGHTS_ONLY_ENV not in os.environ

    # uninterrupted: 4 epochs
    full = _build_runner(str(tmp_path / 'full'), 'resume_full', 4)
    full.train()
    full_params = _params(full)

    # interrupted after 2 epochs ...
    work_dir = str(tmp_path / 'interrupted')
    first = _build_runner(work_dir, 'resume_first', 4, interrupt_after=2)
    with pytest.raises(Interrupted):
        first.train()
    assert not osp.exists(osp.join(work_dir, 'epoch_3.pth'))
    ckpt_path = osp.join(work_dir, 'epoch_2.pth')
    ckpt = _load_weights_only(ckpt_path)
    assert {'optimizer', 'param_schedulers', 'message_hub'} <= set(ckpt)
    # the checkpoint holds numpy / HistoryBuffer objects, i.e. it is one
    # that needs the allow-list (guards against a trivially loadable file)
    with _without_safe_globals():
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(
            ckpt_path
        )
    assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe
    assert isinstance(
        ckpt['message_hub']['runtime_info']['best_score'], np.floating
    )
    assert ckpt['optimizer']['state'], 'no momentum buffers saved'

    # MMEngine's own resume path loads weights-only: without the allow-list
    # it is refused
    denied = _build_runner(work_dir, 'resume_denied', 4, resume=True)
    with _without_safe_globals(), pytest.raises(pickle.UnpicklingError):
        denied.train()

    # ... and resumed (finds work_dir/last_checkpoint) up to 4 epochs
    torch_load_calls.clear()
    resumed = _build_runner(work_dir, 'resume_second', 4, resume=True)
    resumed.train()

    loads = [c for c in torch_load_calls if str(c['f']) == ckpt_path]
    assert loads, f'resume did not torch.load {ckpt_path}: {torch_load_calls}'
    for call in loads:
        # MMEngine relies on torch's default, which is weights_only=True
        assert call['kwargs'].get('weights_only', True) is True
    assert resumed.train_loop.epoch == 4
    assert osp.isfile(osp.join(work_dir, 'epoch_4.pth'))

    resumed_params = _params(resumed)
    assert resumed_params.keys() == full_params.keys()
    for key, value in full_params.items():
        torch.testing.assert_close(
            resumed_params[key], value, rtol=0, atol=0, msg=key
        )
    # training went on after the checkpoint
    assert not torch.equal(
        resumed_params['net.0.weight'], ckpt['state_dict']['net.0.weight']
    )


def _getattr_calls(path: str) -> List[tuple]:
    """``(object, name, default)`` of every ``builtins.getattr`` call a
    weights-only load of ``path`` makes (mmst's restricted getattr, with a
    recording wrapper registered under its name for this one load)."""
    calls: List[tuple] = []

    def recording_getattr(obj, name, *default):
        calls.append((obj, name, default))
        return checkpoint_getattr(obj, name, *default)

    ours = (checkpoint_getattr, 'builtins.getattr')
    entries = [e for e in allow_mmengine_checkpoint_globals() if e != ours]
    with _without_safe_globals():
        torch.serialization.add_safe_globals(
            entries + [(recording_getattr, 'builtins.getattr')]
        )
        _load_weights_only(path)
    return calls


def test_weights_only_load_needs_the_allow_list(tmp_path):
    """Without the allow-list the same checkpoint is rejected, with it the
    checkpoint loads: the test above really runs a weights-only load."""
    runner = _build_runner(str(tmp_path), 'resume_needs_list', 1)
    runner.train()
    ckpt_path = str(tmp_path / 'epoch_1.pth')

    with _without_safe_globals():
        with pytest.raises(pickle.UnpicklingError):
            _load_weights_only(ckpt_path)
        allow_mmengine_checkpoint_globals()
        ckpt = _load_weights_only(ckpt_path)
    assert ckpt['meta']['epoch'] == 1

    # why MMEngine checkpoints need builtins.getattr at all: the message
    # hub's HistoryBuffers pickle their statistics methods as attributes of
    # the class, and that is the only use (what mmst's getattr allows)
    calls = _getattr_calls(ckpt_path)
    assert {(obj, name) for obj, name, _ in calls} == {
        (HistoryBuffer, name) for name in HISTORY_BUFFER_STATISTICS
    }
    assert all(default == () for _, _, default in calls)
    for name in HISTORY_BUFFER_STATISTICS:
        buffer = ckpt['message_hub']['log_scalars']['train/loss']
        assert buffer._statistics_methods[name] is getattr(HistoryBuffer, name)


def _mmdet_metainfo() -> dict:
    from mmdet.datasets import CocoDataset

    return CocoDataset.METAINFO


def _mmseg_metainfo() -> dict:
    from mmseg.datasets import CityscapesDataset

    return CityscapesDataset.METAINFO


def _mmpretrain_metainfo() -> dict:
    from mmpretrain.datasets import ImageNet

    return ImageNet.METAINFO


def _mmpose_metainfo() -> dict:
    from mmpose.datasets import CocoDataset

    # parses configs/_base_/datasets/coco.py into numpy arrays (uint8
    # colours, float32 sigmas and joint weights)
    return CocoDataset._load_metainfo(CocoDataset.METAINFO)


@pytest.mark.parametrize(
    'get_metainfo',
    [_mmdet_metainfo, _mmseg_metainfo, _mmpretrain_metainfo, _mmpose_metainfo],
    ids=['mmdet', 'mmseg', 'mmpretrain', 'mmpose'],
)
def test_task_library_dataset_meta_loads(
    tmp_path, get_metainfo, no_weights_only_override
):
    """Runner checkpoints carry the training set's metainfo; those of the
    four task libraries' datasets load weights-only too."""
    metainfo = get_metainfo()
    runner = _build_runner(
        str(tmp_path), f'meta_{tmp_path.name}', 1, metainfo=metainfo
    )
    runner.train()
    ckpt_path = str(tmp_path / 'epoch_1.pth')

    ckpt = _load_weights_only(ckpt_path)

    assert pickle.dumps(ckpt['meta']['dataset_meta']) == pickle.dumps(metainfo)
