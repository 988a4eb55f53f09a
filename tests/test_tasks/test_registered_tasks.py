"""Tasks come from ``mmst.registry.TASKS``: inferred from the model, named
in the config (a name or a dict), and registered by another package
without editing mmst (``toy_task.py``)."""

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.structures import BaseDataElement

from mmst.models.tasks import (
    ClassificationTask,
    DetectionTask,
    PoseTask,
    SegmentationTask,
    build_task,
    get_rescaler,
    infer_task,
)
from tests.test_core.common import (
    batch,
    build,
    st_cfg,
    tiny_classifier_cfg,
)

from .toy_task import ToyRegressionTask, ToyRegressor


def _bare(cls):
    """An instance of ``cls`` that skips its __init__: infer_task reads
    the class hierarchy only."""
    return cls.__new__(cls)


def test_tasks_are_inferred_from_the_upstream_classes():
    from mmdet.models import FCOS, CascadeRCNN
    from mmpose.models import TopdownPoseEstimator
    from mmpretrain.models import ImageClassifier
    from mmseg.models import EncoderDecoder

    assert infer_task(_bare(ImageClassifier)) == 'classification'
    assert infer_task(_bare(CascadeRCNN)) == 'detection'
    assert infer_task(_bare(FCOS)) == 'detection'
    assert infer_task(_bare(EncoderDecoder)) == 'segmentation'
    assert infer_task(_bare(TopdownPoseEstimator)) == 'pose'
    unknown = r'cannot tell the task of Linear; set task= one of classif'
    with pytest.raises(TypeError, match=unknown):
        infer_task(torch.nn.Linear(2, 2))


def test_the_four_tasks_are_one_class_each():
    model = build(st_cfg())
    assert type(model.task) is ClassificationTask
    names = {
        cls: cls.name
        for cls in (
            ClassificationTask,
            DetectionTask,
            SegmentationTask,
            PoseTask,
        )
    }
    assert sorted(names.values()) == [
        'classification',
        'detection',
        'pose',
        'segmentation',
    ]


def test_task_by_name_or_dict_and_unknown_names():
    model = build(st_cfg(task='classification'))
    assert type(model.task) is ClassificationTask
    model = build(st_cfg(task=dict(type='classification')))
    assert type(model.task) is ClassificationTask
    unknown = "task='clasification' is not a registered task; allowed: clas"
    with pytest.raises(ValueError, match=unknown):
        build(st_cfg(task='clasification'))
    with pytest.raises(TypeError, match='task=3 is invalid'):
        build_task(3, model.architecture)


def test_unknown_settings_are_refused():
    refused = r"task 'toy.regression': unknown settings \['size_divisr'\]; "
    with pytest.raises(ValueError, match=refused + 'allowed: size_divisor'):
        ToyRegressionTask(size_divisr=8)
    with pytest.raises(ValueError, match="task='detecton' is not a regis"):
        get_rescaler('detecton')


def test_logit_norm_without_logits_is_refused():
    arch = _bare(ToyRegressor)
    refused = "logit_norm='l2' normalises class logits; the task 'toy.re"
    with pytest.raises(ValueError, match=refused):
        ToyRegressionTask(arch, logit_norm='l2')


def _toy_model(**kwargs):
    from mmst.registry import MODELS

    backbone = MODELS.build(tiny_classifier_cfg()['backbone'])
    arch = ToyRegressor(backbone, channels=32)
    return build(
        dict(
            type='mmst.StimulativeTraining',
            architecture=arch,
            num_subnets=3,
            input_resize=dict(ratio_range=(0.5, 0.9)),
            seed=0,
            **kwargs,
        )
    )


def _toy_batch(n=4, size=28):
    g = torch.Generator().manual_seed(0)
    inputs = [torch.rand(1, size, size, generator=g) for _ in range(n)]
    samples = [BaseDataElement(target=x.mean()) for x in inputs]
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize(
    'task',
    [None, 'toy.regression', dict(type='toy.regression', size_divisor=8)],
    ids=['inferred', 'name', 'dict'],
)
def test_a_task_registered_outside_mmst_trains(task):
    model = _toy_model(task=task)
    assert type(model.task) is ToyRegressionTask
    assert model.subnet_loss == 'task' and model.distill is None
    divisor = 8 if isinstance(task, dict) else 4
    assert model.task.settings == dict(size_divisor=divisor)

    sizes = [model.sample(i, 28)[1] for i in range(1, 4)]
    shapes = []
    hook = model.architecture.backbone.register_forward_pre_hook(
        lambda module, args: shapes.append(tuple(args[0].shape[-2:]))
    )
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log = model.train_step(_toy_batch(), optim)
    hook.remove()

    assert model.task.scales == [s / 28 for s in sizes]
    assert shapes[0] == (28, 28)
    for (h, w), size in zip(shapes[1:], sizes):
        assert h == w and h % divisor == 0 and size <= h < size + divisor
    assert torch.isfinite(torch.as_tensor(log['loss_subnet']))
    assert log['loss_subnet'] > 0


def test_classifier_batch_still_trains_through_the_registry():
    model = build(st_cfg(num_subnets=2, seed=0))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    log = model.train_step(batch(), optim)
    assert torch.isfinite(torch.as_tensor(log['loss_subnet']))


class _RenamingDetector(torch.nn.Module):
    """A loss that renames a field of its samples in place, as mmdet's RoI
    heads do with precomputed proposals (``bboxes`` -> ``priors``)."""

    def loss(self, inputs, samples):
        for sample in samples:
            sample.proposals.priors = sample.proposals.pop('bboxes')
        return {'loss': inputs.sum()}


def test_the_passes_leave_the_batch_as_it_was():
    """The batch of one iteration serves every pass: a model's loss that
    renames fields of its data samples (Fast R-CNN's proposals) must not
    change them for the next pass (it used to: the sub-network pass of
    Fast R-CNN failed with KeyError 'bboxes')."""
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    sample = DetDataSample(metainfo=dict(img_shape=(8, 8)))
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0]])
    sample.proposals = InstanceData(bboxes=boxes)
    task = DetectionTask()
    inputs = torch.ones(1, 3, 8, 8)
    for _ in range(2):  # main pass, then a sub-network pass
        task.main_pass(_RenamingDetector(), inputs, [sample])
        assert sample.proposals.keys() == ['bboxes']
        assert sample.proposals.bboxes is boxes
