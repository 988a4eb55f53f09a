"""Which mmpretrain backbones mmst can train with ST, found by building each
registered backbone and asking :func:`mmst.subnet.find_stages` (generated,
so the table in docs/backbones.md cannot drift from the code).

Each backbone is built with its default arch (or the arguments of
:data:`BUILD_ARGS` where it has no default) and classified:

- ``automatic``: mmst finds and checks its residual stages;
- ``declaration``: it works with the ``elastic_stages`` of
  :data:`DECLARATIONS` (checked the same way);
- ``not applicable``: no stage of residual blocks, with the reason.
"""

import logging
import warnings
from typing import Dict, List, Optional

import torch
import torch.nn as nn

#: Arguments for backbones that have no default arch (the common one).
BUILD_ARGS: Dict[str, dict] = {
    'CSPDarkNet': dict(depth=53),
    'CSPResNeXt': dict(depth=50),
    'CSPResNet': dict(depth=50),
    'LeViT': dict(arch='128s'),
    'MobileOne': dict(arch='s0'),
    'PCPVT': dict(arch='small'),
    'PyramidVig': dict(arch='tiny'),
    'RegNet': dict(arch='regnetx_400mf'),
    'RepLKNet': dict(arch='31B'),
    'RepMLPNet': dict(arch='B'),
    'RepVGG': dict(arch='A0'),
    'Res2Net': dict(depth=50),
    'ResNeSt': dict(depth=50),
    'ResNeXt': dict(depth=50),
    'ResNet': dict(depth=50),
    'ResNetV1c': dict(depth=50),
    'ResNetV1d': dict(depth=50),
    'ResNet_CIFAR': dict(depth=18),
    'SEResNeXt': dict(depth=50),
    'SEResNet': dict(depth=50),
    'SVT': dict(arch='small'),
    'SparseResNet': dict(depth=50),
    'VGG': dict(depth=11),
    'Vig': dict(arch='tiny'),
}

#: ``elastic_stages`` for backbones whose stages are not found alone.
DECLARATIONS: Dict[str, list] = {}

#: Settings with which a backbone takes the random smaller inputs of ST++.
SMALLER_INPUT_SETTINGS: Dict[str, dict] = {
    'SwinTransformer': dict(pad_small_map=True),
    'SwinTransformerV2': dict(pad_small_map=True),
}

#: Backbones not built, and why.
NOT_BUILT: Dict[str, str] = {
    'CSPNet': 'a base class (CSPDarkNet, CSPResNet, CSPResNeXt are its '
    'registered forms)',
    'TIMMBackbone': "a wrapper of timm's models: declare elastic_stages for "
    'the timm model you wrap',
}

AUTOMATIC = 'automatic'
DECLARATION = 'declaration'
NOT_APPLICABLE = 'not applicable'


def _rule(backbone: nn.Module, stages: List[List[nn.Module]]) -> str:
    from mmst.subnet.elastic import _mobilenet_v3_stages

    if isinstance(getattr(backbone, 'res_layers', None), (list, tuple)):
        return 'ResNet family (res_layers)'
    layers = getattr(backbone, 'layers', None)
    if (
        isinstance(layers, (list, tuple))
        and layers
        and all(isinstance(n, str) for n in layers)
        and _mobilenet_v3_stages(backbone)
    ):
        return 'MobileNetV3 rule'
    if isinstance(layers, (nn.ModuleList, nn.Sequential)) and stages == [
        list(layers)
    ]:
        return 'encoder layers (one stage)'
    return 'discovered'


def _stage_paths(backbone: nn.Module, stages) -> List[str]:
    names = {m: n for n, m in backbone.named_modules()}
    paths = []
    for blocks in stages:
        first, last = names[blocks[0]], names[blocks[-1]]
        parent, _, i = first.rpartition('.')
        j = last.rpartition('.')[2]
        paths.append(f'{parent}[{i}:{int(j) + 1}]' if parent else first)
    return paths


def classify(name: str) -> dict:
    """The coverage row of one registered mmpretrain backbone: ``name``,
    ``args``, ``status``, ``rule``, ``stages`` (container[first:end]),
    ``depths``, ``reason``, ``smaller_inputs`` (whether it runs on the
    smallest input ST++'s default ``input_resize`` gives a sub-network:
    ``yes``, ``with <setting>`` or ``no (...)``)."""
    import mmpretrain.models  # noqa: F401 (registers the backbones)
    from mmpretrain.registry import MODELS

    from mmst.subnet.discovery import (
        StageCheckError,
        check_stages,
        discover_stages,
    )
    from mmst.subnet.elastic import find_stages

    row = dict(
        name=name,
        args=dict(BUILD_ARGS.get(name, {})),
        status=NOT_APPLICABLE,
        rule='',
        stages=[],
        depths=[],
        reason='',
        smaller_inputs='',
    )
    if name in NOT_BUILT:
        row['reason'] = NOT_BUILT[name]
        return row
    from mmengine.registry import DefaultScope

    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        try:
            backbone = MODELS.build(dict(type=name, **row['args']))
        except Exception as e:  # noqa: BLE001 (reported in the row)
            row['reason'] = f'not built: {type(e).__name__}: {e}'[:200]
            return row
    backbone.eval()
    declared = DECLARATIONS.get(name)
    try:
        stages = find_stages(backbone, declared)
    except (TypeError, ValueError):
        rejected: list = []
        try:
            discover_stages(backbone, rejected=rejected)
        except StageCheckError as dry:
            row['reason'] = f'dry forward fails: {str(dry)[:160]}'
            return row
        if not rejected:
            row['reason'] = 'no container of repeated blocks'
        else:
            row['reason'] = '; '.join(
                f'{path or "(root)"}: {why}' for path, why in rejected[:3]
            ) + (f' (+{len(rejected) - 3} more)' if len(rejected) > 3 else '')
        return row
    try:  # the known families too: a forward that takes an image
        check_stages(backbone, stages)
    except StageCheckError as e:
        row['reason'] = str(e)[:200]
        return row
    row['status'] = DECLARATION if declared else AUTOMATIC
    row['rule'] = 'declared' if declared else _rule(backbone, stages)
    row['stages'] = _stage_paths(backbone, stages)
    row['depths'] = [len(s) for s in stages]
    row['smaller_inputs'] = _smaller_inputs(name, row['args'], backbone)
    return row


def _smaller_inputs(name: str, args: dict, backbone: nn.Module) -> str:
    from mmpretrain.registry import MODELS

    from mmst.subnet import InputSizeSampler
    from mmst.subnet.discovery import smaller_input_failure

    sampler = InputSizeSampler()  # ST++'s default ratio range
    settings = SMALLER_INPUT_SETTINGS.get(name)
    failure = smaller_input_failure(backbone, sampler)
    if failure is None:
        return 'yes'
    if settings:
        torch.manual_seed(0)
        other = MODELS.build(dict(type=name, **args, **settings))
        if smaller_input_failure(other, sampler) is None:
            return 'with ' + ', '.join(
                f'{k}={v!r}' for k, v in settings.items()
            )
    size, small, _ = failure
    return f'no (runs on {size} px, not on {small})'


def coverage_table(names: Optional[List[str]] = None) -> List[dict]:
    """Rows for ``names`` (default: every backbone mmpretrain registers in
    ``mmpretrain.models.backbones``), sorted by name."""
    import mmpretrain.models.backbones as backbones

    names = sorted(names or backbones.__all__)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)
        try:
            for name in names:
                rows.append(classify(name))
        finally:
            logging.disable(previous)
    return rows


def _inter_stage(depths: List[int]) -> str:
    """``space.depths='inter-stage'`` on stages of ``depths`` blocks, as
    the depths kept per stage and the number of sub-networks, e.g.
    ``{3}, {3}, {3..9}, {3} (7)``."""
    from mmst.subnet.space import inter_stage_depths

    if not depths:
        return ''
    choices = inter_stage_depths(depths)
    count = 1
    for c in choices:
        count *= len(c)
    text = ', '.join(
        f'{{{c[0]}}}' if len(c) == 1 else f'{{{c[0]}..{c[-1]}}}'
        for c in choices
    )
    return f'{text} ({count})'


def markdown(rows: List[dict]) -> str:
    """The table of docs/backbones.md."""
    counts = {
        s: sum(r['status'] == s for r in rows)
        for s in (AUTOMATIC, DECLARATION, NOT_APPLICABLE)
    }
    lines = [
        f'{len(rows)} backbones: {counts[AUTOMATIC]} automatic, '
        f'{counts[DECLARATION]} with a declaration, '
        f'{counts[NOT_APPLICABLE]} not applicable.',
        '',
        '| backbone | built with | status | how | stages (blocks) | '
        'inter-stage space | smaller inputs | reason |',
        '|---|---|---|---|---|---|---|---|',
    ]
    for r in rows:
        args = ', '.join(f'{k}={v!r}' for k, v in r['args'].items())
        stages = ', '.join(
            f'`{p}` ({d})' for p, d in zip(r['stages'], r['depths'])
        )
        reason = r['reason'].replace('|', '\\|')
        lines.append(
            f'| {r["name"]} | {args or "defaults"} | {r["status"]} | '
            f'{r["rule"]} | {stages} | {_inter_stage(r["depths"])} | '
            f'{r["smaller_inputs"]} | {reason} |'
        )
    return '\n'.join(lines) + '\n'


def render_page(page: str, table: str, begin: str, end: str) -> str:
    """``page`` with the text between the ``begin`` and ``end`` markers
    replaced by ``table``.

    Raises:
        ValueError: A marker is missing (names it).
    """
    for marker in (begin, end):
        if marker not in page:
            raise ValueError(
                f'the page has no {marker!r} line; add the two markers '
                'where the table goes'
            )
    head, rest = page.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f'{head}{begin}\n{table}{end}{tail}'
