"""The depth-family checkpoint: a trained elastic model's shared weights
once, plus, for each chosen member of its depth menu, the BN statistics
re-estimated for it and the menu's measurements (``docs/family.md``).

The file is ``torch.save`` of a dict:

- ``state_dict``: the full network as trained (upstream keys, stored BN
  statistics): MMEngine's and the task libraries' ``load_checkpoint`` and
  :func:`mmst.apis.init_model` load it as any checkpoint of the plain
  model;
- ``meta``: the source checkpoint's (``dataset_meta`` ...);
- ``mmst_family`` (:data:`FAMILY_KEY`): ``format`` (:data:`FAMILY_FORMAT`),
  ``label`` (the menu's checkpoint), ``source`` (its path and SHA-256),
  ``menu`` (the menu's settings, machine, metric, space, units; no member
  rows) and ``members``: per member its menu row (``name``, ``subnet``
  (blocks per stage), ``blocks``, ``params``, ``flops``, ``latency``
  {batch size: {``median_ms`` ...}}, ``onnxruntime_latency``, ``results``
  {label: {``metric``, ``metrics``, ``recal_images_used``}}) and
  ``bn_stats`` {BN layer name: (running_mean, running_var)} (CPU tensors;
  empty when the menu used the stored statistics).

:func:`write_family` re-estimates the statistics exactly as the menu did
(its settings, seed, images, device and thread count), so every member's
metric from the family equals its menu row; :class:`mmst.apis.DepthFamily`
switches between the members.
"""

import json
import os.path as osp
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

import torch

from mmst.fileio import save_atomic

#: The checkpoint entry that holds the family.
FAMILY_KEY = 'mmst_family'
#: Layout version of :data:`FAMILY_KEY`.
FAMILY_FORMAT = 'mmst-depth-family/1'
#: Menu entries that are not kept in the family's ``menu``.
_PER_RUN = ('members', 'frontiers', 'runs', 'choice', 'complete')


def _label_of(menu: dict, label: Optional[str]) -> str:
    labels = [c['label'] for c in menu['checkpoints']]
    label = labels[-1] if label is None else label
    if label not in labels:
        raise ValueError(
            f'--select {label!r} is invalid; allowed: ' + ' | '.join(labels)
        )
    return label


def family_members(
    menu: dict, label: Optional[str] = None, members: Optional[Sequence] = None
) -> List[dict]:
    """The menu rows a family of checkpoint ``label`` (default: the last)
    keeps, in the menu's order: ``members`` (sub-network specs,
    :func:`mmst.subnet.parse_subnet_specs`), else the members on the
    menu's latency or FLOPs Pareto frontier (so that a latency and a FLOPs
    budget both find their best member in the family).

    Raises:
        ValueError: ``label`` is not in the menu, a spec is invalid, or a
            member has no metric for ``label`` in the menu (the message
            names the members that have one).
    """
    from mmst.analysis.menu.outputs import frontier, member_metric
    from mmst.subnet import SubnetSpace, format_subnet, resolve_subnets

    label = _label_of(menu, label)
    rows = [m for m in menu['members'] if member_metric(m, label) is not None]
    if members is None:
        batch = menu['latency_batch_size']
        front = set(frontier(menu, label, 'latency', batch))
        front |= set(frontier(menu, label, 'flops'))
        return [m for m in rows if m['name'] in front]
    space = menu['space']
    space = SubnetSpace(space['stage_depths'], space['depth_choices'])
    names = [
        format_subnet(s)
        for s in resolve_subnets(members, space, '--family-members', False)
    ]
    by_name = {m['name']: m for m in rows}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ValueError(
            f'--family-members {" ".join(missing)}: not measured for '
            f'{label!r} in the menu; allowed: ' + ' | '.join(by_name)
        )
    return [m for m in rows if m['name'] in names]


@contextmanager
def _threads(count: Optional[int]) -> Iterator[None]:
    """``torch.set_num_threads(count)`` for the duration (None: as is)."""
    old = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _check_source(st: dict, path: str, cfg) -> None:
    """Refuse a checkpoint or config that changed since the menu."""
    from mmst.analysis.menu.settings import config_sha256, file_sha256

    entry = next(c for c in st['checkpoints'] if c['path'] == path)
    if file_sha256(path) != entry['sha256']:
        raise ValueError(
            f'{path} changed since the menu measured it (SHA-256 differs); '
            'rebuild the menu (--force) before writing a family'
        )
    if config_sha256(cfg) != st['config_sha256']:
        raise ValueError(
            f"{st['config']} (with the menu's --cfg-options) changed since "
            'the menu measured it; rebuild the menu (--force)'
        )


def _member_stats(sweep, rows: List[dict], device) -> Tuple[list, int]:
    """Per row, ``{BN layer name: (mean, var)}`` (CPU) re-estimated as
    :meth:`mmst.analysis.Sweep.run` does (``{}``: the sweep uses the
    stored statistics), and the images used."""
    from mmst.engine import member_bn_stats

    if not sweep.recal_images:
        return [{} for _ in rows], 0
    subs = sweep.members([m['subnet'] for m in rows], '--family-members')
    sweep.model.to(device)
    found, used = member_bn_stats(
        sweep.arch, sweep.recal, sweep.recal_images, subs, sweep.elastic
    )
    names = {module: name for name, module in sweep.arch.named_modules()}
    return [
        {names[bn]: (mean.cpu(), var.cpu()) for bn, (mean, var) in s.items()}
        for s in found
    ], used


def write_family(
    menu: dict,
    out: str,
    label: Optional[str] = None,
    members: Optional[Sequence] = None,
    force: bool = False,
) -> dict:
    """Write the depth family of ``menu``'s checkpoint ``label`` (default:
    the last) to ``out`` atomically (:func:`mmst.fileio.save_atomic`): the
    weights once, and for each of ``members`` (:func:`family_members`;
    default: the Pareto frontiers) its menu row and its BN statistics,
    re-estimated with the menu's settings (images, seed, device, thread
    count) so each member's metric equals its menu row.

    Args:
        menu (dict): A depth menu (:func:`mmst.analysis.build_menu`).
        out (str): The family checkpoint to write.
        label (str, optional): The menu's checkpoint.
        members (Sequence, optional): Sub-network specs.
        force (bool): Overwrite ``out``. Defaults to False.

    Returns:
        dict: ``path``, ``label``, ``metric`` (its key), ``members``
        (names), ``bn_stats`` (``'re-estimated'`` or the menu's reason for
        the stored ones) and ``recal_images`` (per member; 0: none).

    Raises:
        FileExistsError: ``out`` exists and ``force`` is False.
        ValueError: An invalid label or member, or the checkpoint or
            config changed since the menu (SHA-256).
        CheckpointError: The checkpoint no longer loads.
    """
    from mmst.analysis.cost import resolve_device
    from mmst.analysis.sweep import open_sweep

    from .export import check_outputs

    check_outputs([out], force)
    label = _label_of(menu, label)
    rows = family_members(menu, label, members)
    st = menu['settings']
    path = next(c['path'] for c in menu['checkpoints'] if c['label'] == label)
    recal = menu.get('bn_stats') == 're-estimated'
    device = resolve_device(st['device'])
    sweep_args = (st['config'], st['split'], st['max_images'])
    sweep_args += (st['cfg_options'] or None, st['space'])
    sweep_args += (st['bn_recal_images'] if recal else 0, st['seed'])
    with _threads(st.get('threads')), open_sweep(
        *sweep_args, eval_loader=False
    ) as sweep:
        _check_source(st, path, sweep.cfg)
        ckpt = sweep.load(path, st.get('strict', True))
        stats, used = _member_stats(sweep, rows, device)
        sweep.model.to('cpu')
        state_dict = sweep.arch.state_dict()
    menu_used = {r['results'][label]['recal_images_used'] for r in rows}
    if menu_used != {used}:
        raise ValueError(
            f'the family used {used} BN re-estimation images, the menu '
            f'{sorted(menu_used)}; rebuild the menu (--force)'
        )
    # as menu.json holds them (plain JSON types: weights_only-loadable)
    plain = json.loads(json.dumps(menu))
    header = {k: v for k, v in plain.items() if k not in _PER_RUN}
    header['checkpoints'] = [
        c for c in header['checkpoints'] if c['label'] == label
    ]
    by_name = {m['name']: m for m in plain['members']}
    family_rows = []
    for row, bn_stats in zip(rows, stats):
        row = by_name[row['name']]
        row['results'] = {label: row['results'][label]}
        family_rows.append(dict(row, bn_stats=bn_stats))
    source = next(c for c in st['checkpoints'] if c['label'] == label)
    family = dict(
        format=FAMILY_FORMAT,
        label=label,
        source=dict(path=path, sha256=source['sha256']),
        menu=header,
        members=family_rows,
    )
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    save_atomic(
        {'meta': meta or {}, 'state_dict': state_dict, FAMILY_KEY: family},
        out,
    )
    return dict(
        path=osp.abspath(out),
        label=label,
        metric=menu['metric'],
        members=[r['name'] for r in family_rows],
        bn_stats=menu.get('bn_stats'),
        recal_images=used,
    )


def read_family(path: str) -> Tuple[dict, dict]:
    """``(checkpoint, family)`` of a family checkpoint (read with
    :func:`mmst.converters.checkpoint_io.read_checkpoint`).

    Raises:
        CheckpointError: The file is missing or unreadable.
        ValueError: It holds no family (:data:`FAMILY_KEY`) or another
            layout than :data:`FAMILY_FORMAT`.
    """
    from mmst.converters.checkpoint_io import read_checkpoint

    ckpt = read_checkpoint(path)
    family = ckpt.get(FAMILY_KEY) if isinstance(ckpt, dict) else None
    if not isinstance(family, dict):
        raise ValueError(
            f'{path} holds no depth family (no {FAMILY_KEY!r} entry); write '
            'one with tools/analysis_tools/depth_menu.py ... --family OUT.pth'
        )
    if family.get('format') != FAMILY_FORMAT:
        raise ValueError(
            f'{path}: {FAMILY_KEY}.format={family.get("format")!r} is '
            f'invalid; allowed: {FAMILY_FORMAT!r}'
        )
    return ckpt, family


def family_menu(family: dict) -> dict:
    """The family as a menu (its header and member rows without the BN
    statistics) for :func:`mmst.analysis.choose_member` and
    :func:`mmst.analysis.markdown_table`."""
    rows = [
        {k: v for k, v in m.items() if k != 'bn_stats'}
        for m in family['members']
    ]
    return dict(family['menu'], members=rows)
