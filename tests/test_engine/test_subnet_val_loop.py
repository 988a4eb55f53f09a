"""SubnetValLoop's BN re-estimation through real MMEngine Runners:
checkpoints of ``bn_stats='shared'`` models carry the statistics the logged
validation used, iteration-based schedules (InfiniteSampler) train through
validations without their training being perturbed, and validation works
(or says clearly why not) without a training loop."""

import copy
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint

from tests.test_core.common import make_folder_dataset

from .common import engine_cfg, st_model

STATS = ('running_mean', 'running_var')


def _val_cfg(**kwargs) -> dict:
    cfg = dict(type='mmst.SubnetValLoop', subnets=['smallest'])
    cfg.update(kwargs)
    return cfg


def _runner(cfg: Config, name: str) -> Runner:
    cfg = copy.deepcopy(cfg)
    cfg.experiment_name = name  # loggers and visualizers are per name
    return Runner.from_cfg(cfg)


def _logged(runner: Runner, key: str) -> float:
    return runner.message_hub.get_scalar(f'val/{key}').current()


def _test_metrics(cfg: Config, checkpoint: str, name: str) -> dict:
    """What ``tools/test.py CONFIG CHECKPOINT`` reports: a fresh Runner
    that loads the checkpoint and tests on the validation set."""
    cfg = copy.deepcopy(cfg)
    cfg.work_dir = cfg.work_dir + '_test'
    cfg.load_from = checkpoint
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.test_cfg = dict()
    return _runner(cfg, name).test()


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return make_folder_dataset(tmp_path_factory.mktemp('data'))


@pytest.mark.parametrize('schedule', ['epoch', 'iter'])
def test_shared_bn_checkpoint_holds_validated_stats(
    tmp_path, data_root, schedule
):
    """bn_stats='shared': the checkpoint saved with the validation holds
    the re-estimated statistics that validation used, and testing it
    reproduces the logged metric; the validation right after the save does
    not re-estimate again."""
    iter_based = schedule == 'iter'
    cfg = engine_cfg(
        tmp_path / schedule,
        data_root,
        st_model(bn_stats='shared'),
        val_cfg=_val_cfg(bn_recal_images=12),
        iter_based=iter_based,
        max_iters=2,
        log_level='INFO',
    )
    runner = _runner(cfg, f'shared_{schedule}')
    runner.train()  # the last validation comes after the last save
    name = 'iter_2.pth' if iter_based else 'epoch_1.pth'
    ckpt_path = str(tmp_path / schedule / name)
    saved = _load_checkpoint(ckpt_path)['state_dict']
    validated = runner.model.state_dict()
    keys = [k for k in saved if k.endswith(STATS)]
    assert keys
    for k in keys:
        assert torch.equal(saved[k], validated[k]), k

    log = next((tmp_path / schedule).glob('*/*.log')).read_text()
    assert len(re.findall('before saving the checkpoint', log)) == 1
    assert 'for validation' not in log

    metrics = _test_metrics(cfg, ckpt_path, f'shared_{schedule}_test')
    assert metrics['accuracy/top1'] == _logged(runner, 'accuracy/top1')


def test_iter_based_schedule_trains_unperturbed(tmp_path, data_root):
    """IterBasedTrainLoop with an InfiniteSampler and random flips:
    sub-network validations with BN re-estimation every 2 iterations do
    not stop training, and training ends with exactly the weights of the
    same run whose validations do not re-estimate."""
    finals = {}
    for images in (12, 0):
        cfg = engine_cfg(
            tmp_path / f'recal{images}',
            data_root,
            st_model(),
            val_cfg=_val_cfg(bn_recal_images=images),
            iter_based=True,
            max_iters=4,
        )
        runner = _runner(cfg, f'iter_recal{images}')
        runner.train()
        assert runner.iter == 4
        assert 0 <= _logged(runner, 'subnet[1,1,1]/accuracy/top1') <= 100
        finals[images] = runner.model.state_dict()
    for k, v in finals[12].items():
        assert torch.equal(v, finals[0][k]), k


def _val_only_cfg(tmp_path, data_root, val_cfg, with_train=True):
    cfg = engine_cfg(tmp_path, data_root, st_model(), val_cfg=val_cfg)
    if not with_train:
        cfg.train_dataloader = cfg.train_cfg = cfg.optim_wrapper = None
        cfg.param_scheduler = None
    return cfg


def _val_loss_classifier() -> str:
    """An ImageClassifier whose predictions end with the loss element that
    MMEngine's ValLoop averages into ``val_loss`` (loss: the mean input)."""
    from mmengine.structures import BaseDataElement
    from mmpretrain.models import ImageClassifier
    from mmpretrain.registry import MODELS

    name = 'ValLossClassifier'
    if MODELS.get(name) is None:

        @MODELS.register_module(name=name)
        class ValLossClassifier(ImageClassifier):
            def predict(self, inputs, data_samples=None, **kwargs):
                preds = super().predict(inputs, data_samples, **kwargs)
                loss = dict(loss_mean=inputs.mean())
                return list(preds) + [BaseDataElement(loss=loss)]

    return name


def test_val_without_training_loop(tmp_path, data_root):
    """runner.val() re-estimates from the config's train_dataloader without
    building the training loop; the losses a model returns in validation
    are logged as MMEngine's ValLoop logs them (``val_loss``), for the
    sub-networks too."""
    cfg = _val_only_cfg(tmp_path / 'val', data_root, _val_cfg())
    cfg.val_cfg.bn_recal_images = 12
    cfg.model.architecture.type = _val_loss_classifier()
    runner = _runner(cfg, 'val_only')
    metrics = runner.val()
    assert 0 <= metrics['subnet[1,1,1]/accuracy/top1'] <= 100
    assert not hasattr(runner._train_loop, 'run')  # still the config dict
    assert runner.val_loop.recal_loader().last_count == 12
    # the inputs' mean, the same for every network: 0 < mean < 255
    assert 0 < metrics['loss_mean'] == metrics['val_loss'] < 255
    assert metrics['subnet[1,1,1]/val_loss'] == metrics['val_loss']
    assert _logged(runner, 'val_loss') == metrics['val_loss']


def test_val_refusals_name_the_fix(tmp_path, data_root):
    """No train_dataloader: a clear error, and bn_recal_images=0 works;
    more images than the training set: the numbers."""
    cfg = _val_only_cfg(
        tmp_path / 'none', data_root, _val_cfg(bn_recal_images=12), False
    )
    with pytest.raises(
        ValueError,
        match=r'SubnetValLoop re-estimates BN statistics on training images '
        r"\(bn_recal_images=12 \(each sub-network's statistics\)\), but the "
        r'config has no train_dataloader; set train_dataloader .* or set '
        r'val_cfg bn_recal_images=0 to validate without re-estimation',
    ):
        _runner(cfg, 'no_train').val()
    cfg.val_cfg.bn_recal_images = 0
    assert 'subnet[1,1,1]/accuracy/top1' in _runner(cfg, 'no_recal').val()

    cfg = _val_only_cfg(
        tmp_path / 'many', data_root, _val_cfg(bn_recal_images=100)
    )
    with pytest.raises(
        ValueError,
        match=r'bn_recal_images=100 is more than the training images '
        r'available for BN re-estimation: 18 \(18 per rank x 1 rank\(s\), '
        r'3 batches of 6; the dataset has 18 images\)',
    ):
        _runner(cfg, 'too_many').val()


def test_too_many_recal_images_refused_before_training(tmp_path, data_root):
    """A bn_recal_images the training data cannot provide stops the run
    when the loops are built, before the first iteration (not after an
    epoch of training)."""
    cfg = engine_cfg(
        tmp_path / 'early',
        data_root,
        st_model(),
        val_cfg=_val_cfg(bn_recal_images=100),
    )
    runner = _runner(cfg, 'too_many_early')
    with pytest.raises(
        ValueError, match=r'bn_recal_images=100 is more than the training'
    ):
        runner.train()
    assert runner.iter == 0
    assert not list((tmp_path / 'early').glob('*.pth'))


@pytest.mark.parametrize('recal_main', [None, True])
def test_frozen_bn_needs_no_recal_images(tmp_path, data_root, recal_main):
    """Every BN frozen (``norm_eval=True``, as mmdet's detectors): nothing
    is re-estimated, so ``bn_recal_images`` larger than the training set
    (and ``recal_main``) is not refused; the log says once why no images
    are read, and the statistics stay those of the model."""
    model = st_model()
    model['architecture']['backbone']['norm_eval'] = True
    cfg = engine_cfg(
        tmp_path / 'frozen',
        data_root,
        model,
        val_cfg=_val_cfg(bn_recal_images=100, recal_main=recal_main),
        log_level='INFO',
    )
    runner = _runner(cfg, f'frozen_bn_{recal_main}')
    before = {
        k: v.clone()
        for k, v in runner.model.state_dict().items()
        if k.endswith(STATS)
    }
    metrics = runner.val()
    assert 0 <= metrics['subnet[1,1,1]/accuracy/top1'] <= 100
    assert runner.val_loop._recal_loader is None  # no image was read
    for k, v in runner.model.state_dict().items():
        if k in before:
            assert torch.equal(v, before[k]), k
    log = next((tmp_path / 'frozen').glob('*/*.log')).read_text()
    assert log.count('BN re-estimation skipped') == 1, log
    assert (
        'val_cfg: BN re-estimation skipped: no BN layer of the model trains '
        '(norm_eval=True, frozen stages or no BN layers)'
    ) in log
