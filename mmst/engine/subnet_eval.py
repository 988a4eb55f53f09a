"""Evaluating sub-networks (the loafing view) and the validation loop that
reports them next to the main network."""

import logging
from typing import Dict, Iterable, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.runner import ValLoop
from mmengine.runner.amp import autocast

from mmst.models.algorithms.stimulative import unwrap_st
from mmst.registry import LOOPS
from mmst.subnet import ElasticDepth, SubnetSpace, format_subnet
from mmst.subnet.space import Subnet

from .bn_recal import preserved_bn_stats, recalibrate_bn

SubnetSpec = Union[str, Sequence[int]]
NAMED_SUBNETS = ('smallest', 'largest', 'full', 'all')


def elastic_of(model: nn.Module) -> tuple:
    """The (ElasticDepth, SubnetSpace) of an ST model, or of a plain
    upstream model's backbone with the default space."""
    model = getattr(model, 'module', model)
    if hasattr(model, 'elastic') and hasattr(model, 'space'):
        return model.elastic, model.space
    arch = unwrap_st(model)
    elastic = ElasticDepth(arch.backbone)
    return elastic, SubnetSpace(elastic.stage_depths)


def resolve_subnets(
    specs: Sequence[SubnetSpec], space: SubnetSpace
) -> List[Subnet]:
    """Turn ``'smallest' | 'largest' | 'full' | 'all' | [k1, k2, ...]``
    into sub-networks of ``space``."""
    subnets: List[Subnet] = []
    for spec in specs:
        if spec == 'all':
            subnets += space.members()
        elif spec in ('smallest', 'largest', 'full'):
            subnets.append(getattr(space, spec)())
        elif isinstance(spec, (list, tuple)):
            subnets.append(space.subnet_from_depths(spec))
        else:
            raise ValueError(
                f'subnets entry {spec!r} is invalid; allowed: '
                + ' | '.join(NAMED_SUBNETS)
                + ' or a list of depths per stage'
            )
    unique = []
    for s in subnets:
        if s not in unique:
            unique.append(s)
    return unique


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    dataloader: Iterable,
    evaluator: Evaluator,
    fp16: bool = False,
) -> Dict[str, float]:
    """Run ``model.val_step`` over ``dataloader`` and evaluate (no hooks)."""
    model.eval()
    for data in dataloader:
        with autocast(enabled=fp16):
            outputs = model.val_step(data)
        evaluator.process(data_samples=outputs, data_batch=data)
    return evaluator.evaluate(len(dataloader.dataset))


def evaluate_subnet(
    model: nn.Module,
    subnet: Optional[Subnet],
    elastic: ElasticDepth,
    dataloader: Iterable,
    evaluator: Evaluator,
    recal_loader: Optional[Iterable] = None,
    bn_recal_images: int = 0,
    fp16: bool = False,
) -> Dict[str, float]:
    """Metrics of ``model`` run as ``subnet`` (None: the full network),
    with BN statistics re-estimated for it on ``bn_recal_images`` images of
    ``recal_loader`` first (0: the stored statistics). The model's own BN
    statistics are restored afterwards."""
    arch = unwrap_st(model)
    with preserved_bn_stats(arch), elastic.activate(subnet):
        if bn_recal_images:
            if recal_loader is None:
                raise ValueError(
                    'BN re-estimation needs a dataloader of '
                    'training images (train_dataloader)'
                )
            recalibrate_bn(arch, recal_loader, bn_recal_images)
        return evaluate_model(model, dataloader, evaluator, fp16)


@LOOPS.register_module()
class SubnetValLoop(ValLoop):
    """Validation of the main network and of a list of sub-networks.

    Sub-network metrics are logged as ``subnet[k1,k2,...]/<metric>`` next
    to the main network's. Each sub-network is evaluated with its own BN
    statistics, re-estimated on ``bn_recal_images`` training images (with
    the main network's statistics the numbers would measure BN mismatch,
    not loafing); the main network's statistics are left as they were.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): Validation dataloader.
        evaluator (Evaluator | dict | list): Validation evaluator.
        subnets (Sequence): Which sub-networks: ``'smallest'``,
            ``'largest'``, ``'full'``, ``'all'`` or depth lists, resolved
            in the ST model's space (a plain model: the default space of
            its backbone). Defaults to ``('smallest', 'largest')``.
        bn_recal_images (int): Training images for each sub-network's BN
            statistics; 0 evaluates with the main network's statistics
            (shows BN mismatch). Defaults to 2000.
        recal_main (bool, optional): Re-estimate the main network's BN
            statistics (permanently) before validating it: needed when the
            ST model's ``bn_stats='shared'`` (the authors' recipe). None:
            exactly in that case.
        fp16 (bool): Validate under autocast. Defaults to False.
    """

    def __init__(
        self,
        runner,
        dataloader,
        evaluator,
        subnets: Sequence[SubnetSpec] = ('smallest', 'largest'),
        bn_recal_images: int = 2000,
        recal_main: Optional[bool] = None,
        fp16: bool = False,
    ) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        if bn_recal_images < 0:
            raise ValueError(
                f'bn_recal_images={bn_recal_images!r} is '
                'invalid; allowed: an integer >= 0'
            )
        self.subnet_specs = list(subnets)
        self.bn_recal_images = bn_recal_images
        self.recal_main = recal_main
        # Validate the specs now, not at the first validation.
        resolve_subnets(self.subnet_specs, elastic_of(runner.model)[1])

    def _recal_loader(self):
        loader = self.runner.train_dataloader
        if loader is None:
            raise ValueError(
                'SubnetValLoop re-estimates BN statistics on '
                'training images: set train_dataloader, or '
                'bn_recal_images=0'
            )
        return loader

    def run(self) -> dict:
        self.runner.call_hook('before_val')
        self.runner.call_hook('before_val_epoch')
        model = self.runner.model
        module = getattr(model, 'module', model)
        recal_main = self.recal_main
        if recal_main is None:
            recal_main = getattr(module, 'bn_stats', 'main') == 'shared'
        if recal_main:
            used = recalibrate_bn(
                unwrap_st(model),
                self._recal_loader(),
                self.bn_recal_images or 2000,
            )
            print_log(
                f're-estimated the main network BN statistics on '
                f'{used} training images',
                'current',
                logging.INFO,
            )
        model.eval()
        self.val_loss.clear()
        for idx, data_batch in enumerate(self.dataloader):
            self.run_iter(idx, data_batch)
        metrics = self.evaluator.evaluate(len(self.dataloader.dataset))
        metrics.update(self.evaluate_subnets())
        self.runner.call_hook('after_val_epoch', metrics=metrics)
        self.runner.call_hook('after_val')
        return metrics

    def evaluate_subnets(self) -> Dict[str, float]:
        model = self.runner.model
        elastic, space = elastic_of(model)
        loader = self._recal_loader() if self.bn_recal_images else None
        results: Dict[str, float] = {}
        for subnet in resolve_subnets(self.subnet_specs, space):
            metrics = evaluate_subnet(
                model,
                subnet,
                elastic,
                self.dataloader,
                self.evaluator,
                loader,
                self.bn_recal_images,
                self.fp16,
            )
            name = f'subnet{format_subnet(subnet)}'
            results.update({f'{name}/{k}': v for k, v in metrics.items()})
        return results
