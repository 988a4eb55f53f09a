"""A depth family at run time: one model that runs as any member of its
family checkpoint (:mod:`mmst.deploy.family`) and switches member without
recalibration or rebuild (``docs/family.md``)."""

import contextlib
import copy
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

from .inference import init_model, is_st_model

#: A member as a user names it: ``'[1,2,1]'``, ``'1,2,1'``, ``[1, 2, 1]``,
#: ``'smallest'`` / ``'largest'`` / ``'full'`` (of the family's space).
MemberSpec = Union[str, Sequence[int]]
_Buffers = List[Tuple[nn.Module, torch.Tensor, torch.Tensor]]


class DepthFamily:
    """A plain upstream model (``model``: a classifier, detector,
    segmentor or pose estimator) and the members of its depth family.

    :meth:`set_member` makes ``model`` run as a member until the next
    switch: the blocks the member skips are bypassed
    (:meth:`mmst.subnet.ElasticDepth.activate`) and the BN layers' running
    statistics become the member's, by pointing their buffers at tensors
    prepared on the model's device when the family was loaded (no copy, no
    recalibration, no rebuild). ``model`` goes to the libraries'
    inference APIs as it is (``inference_detector(family.model, img)``).

    The members' statistics are for inference: in training mode BN layers
    would update the active member's tensors in place.

    Args:
        model (nn.Module): The plain model, family weights loaded, in eval
            mode (:func:`init_family` builds it).
        family (dict): The checkpoint's ``mmst_family`` entry.
        elastic (ElasticDepth): ``model``'s elastic backbone.

    Raises:
        ValueError: The family does not fit the model (stage depths, BN
            layer names).
    """

    def __init__(self, model: nn.Module, family: dict, elastic) -> None:
        from mmst.deploy.family import family_menu
        from mmst.subnet import SubnetSpace

        space = family['menu']['space']
        if list(space['stage_depths']) != elastic.stage_depths:
            raise ValueError(
                f'the family has stage depths {space["stage_depths"]}, the '
                f'model {elastic.stage_depths}; allowed: the config the '
                'family was measured with'
            )
        self.model = model
        self.family = family
        self.elastic = elastic
        self.space = SubnetSpace(space['stage_depths'], space['depth_choices'])
        self.label = family['label']
        self.menu = family_menu(family)
        self._rows = {m['name']: m for m in self.menu['members']}
        self._subnets = {
            m['name']: self.space.subnet_from_depths(m['subnet'])
            for m in family['members']
        }
        self._skip = contextlib.ExitStack()
        self._member: Optional[str] = None
        self._prepare()

    # -- what the family holds ---------------------------------------------
    @property
    def members(self) -> List[str]:
        """The members' names (``'[1,2,1]'``), in the menu's order."""
        return list(self._rows)

    @property
    def member(self) -> Optional[str]:
        """The active member's name; None: the full network as stored in
        the checkpoint (its own BN statistics)."""
        return self._member

    @property
    def metric(self) -> str:
        """The metric's key (e.g. ``'accuracy/top1'``)."""
        return self.menu['metric']

    def row(self, spec: Optional[MemberSpec] = None) -> dict:
        """The menu row of a member (default: the active one): ``name``,
        ``subnet``, ``params``, ``flops``, ``latency`` {batch size:
        {``median_ms`` ...}}, ``results`` {label: {``metric`` ...}}.

        Raises:
            ValueError: As :meth:`set_member`; no member is active.
        """
        name = self._member if spec is None else self._name(spec)
        if name is None:
            raise ValueError('no member is active; call set_member first')
        return self._rows[name]

    # -- switching ------------------------------------------------------------
    def _prepare(self) -> None:
        """Per member, the (BN layer, mean, var) to point at, on the
        model's device: the member's statistics, else the stored ones."""
        modules = dict(self.model.named_modules())
        names = sorted(
            {n for m in self.family['members'] for n in m['bn_stats']}
        )
        bad = [n for n in names if not isinstance(modules.get(n), _BatchNorm)]
        if bad:
            raise ValueError(
                f'the family has BN statistics of {bad[:5]} ({len(bad)} in '
                'all), which the model lacks; allowed: the config the '
                'family was measured with'
            )
        bns = [modules[n] for n in names]
        stored = [(bn, bn.running_mean, bn.running_var) for bn in bns]
        self._buffers: Dict[Optional[str], _Buffers] = {None: stored}
        for m in self.family['members']:
            own = m['bn_stats']
            self._buffers[m['name']] = [
                (bn, *(t.to(mean.device) for t in own[n]))
                if n in own
                else (bn, mean, var)
                for n, (bn, mean, var) in zip(names, stored)
            ]

    def _name(self, spec: MemberSpec) -> str:
        """The family member ``spec`` names.

        Raises:
            ValueError: An invalid spec, or a member not in the family
                (naming the members).
        """
        from mmst.subnet import format_subnet, resolve_subnets

        if isinstance(spec, str) and spec in self._rows:
            return spec
        one = spec if isinstance(spec, str) else [list(spec)]
        subnets = resolve_subnets(one, self.space, 'member', False)
        if len(subnets) != 1:
            raise ValueError(
                f'member={spec!r} is invalid; allowed: one member of '
                + ' | '.join(self._rows)
            )
        name = format_subnet(subnets[0])
        if name not in self._rows:
            raise ValueError(
                f'member {name} is not in this family; allowed: '
                + ' | '.join(self._rows)
            )
        return name

    def set_member(self, spec: Optional[MemberSpec]) -> Optional[dict]:
        """Run ``model`` as member ``spec`` (None: the full network with
        its stored statistics) until the next switch; return its row
        (None for None).

        Raises:
            ValueError: An invalid spec (:func:`mmst.subnet.
                parse_subnet_specs`), or a member not in the family (the
                message names the members).
        """
        name = None if spec is None else self._name(spec)
        if name != self._member:
            self._skip.close()
            for bn, mean, var in self._buffers[name]:
                bn._buffers['running_mean'] = mean
                bn._buffers['running_var'] = var
            if name is not None:
                self._skip.enter_context(
                    self.elastic.activate(self._subnets[name])
                )
            self._member = name
        return None if name is None else self._rows[name]

    def for_budget(
        self,
        max_latency_ms: Optional[float] = None,
        max_flops: Optional[float] = None,
        min_metric: Optional[float] = None,
        batch_size: Optional[int] = None,
    ) -> dict:
        """Switch to the member with the best measured metric within the
        bounds (:func:`mmst.analysis.choose_member` on the family's rows:
        latency in ms at ``batch_size`` (default: the menu's) on the
        machine the menu ran on, FLOPs of one image); return its row.

        Raises:
            BudgetError: No member fits (the nearest one to each bound
                named); ValueError: an invalid bound or batch size.
        """
        from mmst.analysis.menu.outputs import choose_member

        row = choose_member(
            self.menu,
            self.label,
            max_latency_ms=max_latency_ms,
            max_flops=max_flops,
            min_metric=min_metric,
            batch_size=batch_size,
        )
        return self.set_member(row['name'])

    def for_latency(self, ms: float, batch_size: Optional[int] = None) -> dict:
        """:meth:`for_budget` with ``max_latency_ms=ms``."""
        return self.for_budget(max_latency_ms=ms, batch_size=batch_size)

    def for_flops(self, flops: float) -> dict:
        """:meth:`for_budget` with ``max_flops=flops`` (of one image)."""
        return self.for_budget(max_flops=flops)

    # -- running ----------------------------------------------------------
    def __call__(self, *args, **kwargs):
        """``model(*args, **kwargs)`` as the active member."""
        return self.model(*args, **kwargs)

    def to(self, device: Union[str, torch.device]) -> 'DepthFamily':
        """Move the model and every member's statistics to ``device``."""
        name = self._member
        self.set_member(None)
        self.model.to(device)
        self._prepare()
        self.set_member(name)
        return self

    def __repr__(self) -> str:
        return (
            f'DepthFamily({type(self.model).__name__}, member={self.member}, '
            f'members={self.members})'
        )


def init_family(
    config: Optional[Union[str, os.PathLike, Config]],
    checkpoint: Union[str, os.PathLike],
    device: str = 'cpu',
    *,
    cfg_options: Optional[dict] = None,
) -> DepthFamily:
    """Load a family checkpoint (``depth_menu.py ... --family OUT.pth``)
    as a :class:`DepthFamily` on ``device``, the full network active.

    Args:
        config (str | PathLike | Config, optional): The training config
            (an ST config or a plain one); None: the menu's config with the
            menu's ``--cfg-options``.
        checkpoint (str | PathLike): The family checkpoint.
        device (str): Where the model and the statistics go.
        cfg_options (dict, optional): Overrides of ``config`` (as
            :func:`init_model`).

    Returns:
        DepthFamily: Its ``model`` is what :func:`init_model` returns for
        ``config`` and ``checkpoint``.

    Raises:
        CheckpointError: The checkpoint is missing, unreadable or does not
            fit the model (strict).
        ValueError: It holds no family, or the family does not fit.
    """
    from mmst.deploy.family import read_family
    from mmst.subnet import ElasticDepth

    checkpoint = os.fspath(checkpoint)
    _, family = read_family(checkpoint)
    if config is None:
        settings = family['menu']['settings']
        config = family['menu']['config']
        cfg_options = {
            **(settings['cfg_options'] or {}),
            **(cfg_options or {}),
        }
    if isinstance(config, (str, os.PathLike)):
        config = Config.fromfile(os.fspath(config))
    if cfg_options:
        config = copy.deepcopy(config)
        config.merge_from_dict(cfg_options)
    model = init_model(config, checkpoint, device)
    stages = None
    if is_st_model(config.get('model')):
        stages = config.model.get('elastic_stages')
    return DepthFamily(model, family, ElasticDepth(model.backbone, stages))
