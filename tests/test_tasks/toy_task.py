"""A task registered from outside mmst, as a user's package would do it:
a child registry of ``mmst.registry.TASKS`` with the package's own scope,
and one task for the package's own kind of model (``docs/tasks.md``).

The model: ``ToyRegressor`` predicts a number per image (the mean pixel
value) from a ResNet's pooled features; its ground truth, ``target`` in
each data sample, does not depend on the image size. Nothing here is
imported by mmst.
"""

from typing import Any, List

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.registry import Registry
from mmengine.structures import BaseDataElement
from torch import Tensor

from mmst.models.tasks import BaseTask
from mmst.models.tasks.base import Batch, Samples
from mmst.registry import TASKS
from mmst.subnet.rescale import rescale_batch, valid_shape

TOY_TASKS = Registry('task', parent=TASKS, scope='toy')


class ToyRegressor(BaseModel):
    """``backbone`` -> global average pool -> linear: one number per
    image; ``loss`` is the MSE to the samples' ``target``."""

    def __init__(self, backbone: nn.Module, channels: int) -> None:
        super().__init__(data_preprocessor=dict(type='ImgDataPreprocessor'))
        self.backbone = backbone
        self.fc = nn.Linear(channels, 1)

    def predict_value(self, inputs: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(inputs)[-1]
        return self.fc(feats.mean(dim=(2, 3))).squeeze(1)

    def loss(self, inputs: torch.Tensor, data_samples: List) -> dict:
        target = torch.stack([s.target for s in data_samples])
        return {
            'loss_mse': ((self.predict_value(inputs) - target) ** 2).mean()
        }

    def forward(self, inputs, data_samples=None, mode='tensor'):
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        return self.predict_value(inputs)


@TOY_TASKS.register_module('regression')
class ToyRegressionTask(BaseTask):
    """Both passes are the model's own ``loss`` (BaseTask's); a smaller
    input is the batch resized and padded to ``size_divisor`` (a setting),
    and the samples only record the new ``img_shape``."""

    name = 'toy.regression'
    model_bases = ('ToyRegressor',)
    defaults = dict(size_divisor=4)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scales: List[float] = []  # what the ST step asked for

    def rescale(self, inputs: Tensor, samples: Samples, scale: float) -> Batch:
        self.scales.append(scale)
        shapes = [valid_shape(None, inputs)] * inputs.shape[0]

        def rescale_sample(sample: BaseDataElement, resized) -> Any:
            new = sample.clone()
            new.set_metainfo(dict(img_shape=resized.new))
            return new

        divisor = self.settings['size_divisor']
        return rescale_batch(
            inputs, samples, scale, shapes, divisor, 0.0, rescale_sample
        )
