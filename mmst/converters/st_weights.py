"""Convert the Stimulative Training authors' ResNet checkpoints to mmpretrain.

The authors' ``train.py`` saves ``{'epoch', 'state_dict', 'best_acc1',
'best_acc5', 'optimizer'}``; ``state_dict`` comes from a DataParallel model,
so its keys carry a ``module.`` prefix. Their ResNet is a flat
``features`` Sequential (stem, then every bottleneck in order) and a
``classifier`` Sequential holding the final Linear. It maps one-to-one onto
a "pytorch"-style (stride on the 3x3 conv) mmpretrain ``ResNet`` with a
``LinearClsHead``:

=========================  ============================================
authors' key               mmpretrain key
=========================  ============================================
features.0.0               backbone.conv1
features.0.1               backbone.bn1
features.{i}.body.0 / 1    backbone.layer{s}.{b}.conv1 / bn1
features.{i}.body.3 / 4    backbone.layer{s}.{b}.conv2 / bn2
features.{i}.body.6 / 7    backbone.layer{s}.{b}.conv3 / bn3
features.{i}.shortcut.0/1  backbone.layer{s}.{b}.downsample.0 / 1
classifier.0               head.fc
=========================  ============================================

where bottleneck ``i`` (1-based, in order) is block ``b`` (0-based) of
stage ``s`` (1-based) for the stage sizes of the depth (ResNet-50:
[3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]).

Only ``torch`` is needed: this module imports nothing else from mmst or
OpenMMLab, so ``tools/model_converters/st_to_mmpretrain.py`` loads it by
path without ``import mmst`` (which registers everything and imports the
task libraries).
"""

import os
import pickle
import re
import warnings
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from mmst.fileio import save_atomic

STAGE_BLOCKS: Dict[int, Tuple[int, ...]] = {
    50: (3, 4, 6, 3),
    101: (3, 4, 23, 3),
    152: (3, 8, 36, 3),
}
# Number of bottlenecks (features.1..N) -> depth.
DEPTH_BY_BLOCKS: Dict[int, int] = {
    sum(blocks): depth for depth, blocks in STAGE_BLOCKS.items()
}
EXPANSION = 4
FEAT_CHANNELS = 512 * EXPANSION
BN_TENSORS = ('weight', 'bias', 'running_mean', 'running_var')
BN_COUNTER = 'num_batches_tracked'

# How many keys of each kind an error message lists before "(+N more)".
MAX_LISTED = 12

PathLike = Union[str, os.PathLike]


class ConversionError(ValueError):
    """A checkpoint that cannot be converted, or a destination that must not
    be written; the message says why in terms a user can act on."""


def _natural_key(key: str) -> List[Union[int, str]]:
    """Sort ``features.10`` after ``features.9``."""
    return [int(p) if p.isdigit() else p for p in re.split(r'(\d+)', key)]


def _layout(depth: int) -> 'OrderedDict[str, Tuple[str, tuple]]':
    """The authors' keys for a ResNet of ``depth`` (without the head), in
    module order, each with its mmpretrain key and expected shape (None: a
    free dimension)."""
    layout: OrderedDict[str, Tuple[str, tuple]] = OrderedDict()

    def conv(src: str, dst: str, out_ch: int, in_ch: int, k: int) -> None:
        layout[f'{src}.weight'] = (
            f'backbone.{dst}.weight',
            (out_ch, in_ch, k, k),
        )

    def bn(src: str, dst: str, channels: int) -> None:
        for name in BN_TENSORS:
            layout[f'{src}.{name}'] = (f'backbone.{dst}.{name}', (channels,))
        layout[f'{src}.{BN_COUNTER}'] = (f'backbone.{dst}.{BN_COUNTER}', ())

    conv('features.0.0', 'conv1', 64, 3, 7)
    bn('features.0.1', 'bn1', 64)
    index, in_ch = 1, 64
    for stage, num_blocks in enumerate(STAGE_BLOCKS[depth]):
        planes = 64 * 2**stage
        out_ch = planes * EXPANSION
        for block in range(num_blocks):
            src, dst = f'features.{index}', f'layer{stage + 1}.{block}'
            conv(f'{src}.body.0', f'{dst}.conv1', planes, in_ch, 1)
            bn(f'{src}.body.1', f'{dst}.bn1', planes)
            conv(f'{src}.body.3', f'{dst}.conv2', planes, planes, 3)
            bn(f'{src}.body.4', f'{dst}.bn2', planes)
            conv(f'{src}.body.6', f'{dst}.conv3', out_ch, planes, 1)
            bn(f'{src}.body.7', f'{dst}.bn3', out_ch)
            if block == 0:
                conv(
                    f'{src}.shortcut.0',
                    f'{dst}.downsample.0',
                    out_ch,
                    in_ch,
                    1,
                )
                bn(f'{src}.shortcut.1', f'{dst}.downsample.1', out_ch)
            index, in_ch = index + 1, out_ch
    return layout


HEAD_LAYOUT: Dict[str, Tuple[str, tuple]] = {
    'classifier.0.weight': ('head.fc.weight', (None, FEAT_CHANNELS)),
    'classifier.0.bias': ('head.fc.bias', (None,)),
}


def _strip_module_prefix(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    """Remove DataParallel's ``module.`` prefix when every key has it."""
    keys = list(state_dict)
    if keys and all(k.startswith('module.') for k in keys):
        return {k[len('module.') :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _count_blocks(keys: Sequence[str]) -> int:
    """The highest ``features.N`` index, i.e. the number of bottlenecks."""
    indices = [
        int(m.group(1))
        for m in map(re.compile(r'features\.(\d+)\.').match, keys)
        if m
    ]
    return max(indices, default=0)


def _format_keys(keys: Sequence[str]) -> str:
    shown = ', '.join(keys[:MAX_LISTED])
    more = len(keys) - MAX_LISTED
    return shown + (f', ... (+{more} more)' if more > 0 else '')


def _shape_ok(shape: torch.Size, expected: tuple) -> bool:
    return len(shape) == len(expected) and all(
        e is None or s == e for s, e in zip(shape, expected)
    )


def _fmt_shape(shape: tuple) -> str:
    dims = ['N' if s is None else str(s) for s in shape]
    return '(' + ', '.join(dims) + (',)' if len(dims) == 1 else ')')


def _convert(
    state_dict: Mapping[str, Any],
    depth: Optional[int] = None,
    with_head: bool = True,
    source: str = 'the state dict',
) -> Tuple['OrderedDict[str, torch.Tensor]', int]:
    """Implementation of :func:`convert_st_state_dict`; also returns the
    depth used."""
    sd = _strip_module_prefix(state_dict)
    non_tensors = sorted(
        (k for k, v in sd.items() if not isinstance(v, torch.Tensor)),
        key=_natural_key,
    )
    if non_tensors:
        raise ConversionError(
            f'{source} is not a state dict: these entries are not tensors: '
            f'{_format_keys(non_tensors)}'
        )

    note = None
    if depth is None:
        num_blocks = _count_blocks(list(sd))
        depth = DEPTH_BY_BLOCKS.get(num_blocks)
        how = f'depth inferred from {num_blocks} bottleneck blocks'
        if depth is None:
            depth = 50
            how = 'depth not inferable, compared with ResNet-50'
            note = (
                f'found {num_blocks} bottleneck blocks (features.1..N); '
                'N is 16, 33 or 50 for ResNet-50, 101 or 152. Pass '
                '--depth (depth=) to compare with another depth.'
            )
    elif depth in STAGE_BLOCKS:
        how = 'depth as requested'
        num_blocks = _count_blocks(list(sd))
        if num_blocks in DEPTH_BY_BLOCKS and num_blocks != sum(
            STAGE_BLOCKS[depth]
        ):
            note = (
                f'the checkpoint has {num_blocks} bottleneck blocks, i.e. '
                f'ResNet-{DEPTH_BY_BLOCKS[num_blocks]}; omit --depth to '
                'infer it.'
            )
    else:
        raise ConversionError(
            f'unsupported depth {depth!r}; supported: {sorted(STAGE_BLOCKS)}'
        )

    layout = _layout(depth)
    head = HEAD_LAYOUT
    required = [k for k in layout if not k.endswith(BN_COUNTER)]
    if with_head:
        required += list(head)
    known = set(layout) | set(head)  # the head is dropped when not wanted
    missing = [k for k in required if k not in sd]
    unexpected = sorted((k for k in sd if k not in known), key=_natural_key)
    mismatched = []
    for key, (_, expected) in list(layout.items()) + list(head.items()):
        if key in sd and not _shape_ok(sd[key].shape, expected):
            mismatched.append(
                f'{key}: got {_fmt_shape(tuple(sd[key].shape))}'
                f', expected {_fmt_shape(expected)}'
            )
    if 'classifier.0.weight' in sd and 'classifier.0.bias' in sd:
        weight, bias = sd['classifier.0.weight'], sd['classifier.0.bias']
        if (
            weight.dim() == 2
            and bias.dim() == 1
            and weight.shape[0] != bias.shape[0]
        ):
            mismatched.append(
                f'classifier.0.bias: got {_fmt_shape(tuple(bias.shape))}, '
                f'expected ({weight.shape[0]},) to match classifier.0.weight'
            )

    if missing or unexpected or mismatched:
        lines = [
            f"{source} does not match the authors' ResNet-{depth} layout "
            f'({how}):'
        ]
        if missing:
            lines.append(
                f'  missing keys ({len(missing)}): {_format_keys(missing)}'
            )
        if unexpected:
            lines.append(
                f'  unexpected keys ({len(unexpected)}): '
                f'{_format_keys(unexpected)}'
            )
        if mismatched:
            lines.append(
                f'  shape mismatches ({len(mismatched)}): '
                f'{_format_keys(mismatched)}'
            )
        if note:
            lines.append(f'  note: {note}')
        if any(k.startswith(('backbone.', 'head.')) for k in sd):
            lines.append(
                '  (the keys look like an mmpretrain checkpoint, '
                'which needs no conversion)'
            )
        lines.append(
            "  Expected (after removing a DataParallel 'module.' prefix): "
            'features.0.0 stem conv, features.0.1 stem BN, '
            f'features.1..{sum(STAGE_BLOCKS[depth])} bottlenecks with '
            'body.0/1, body.3/4, body.6/7 (conv, BN) and shortcut.0/1 in '
            'the first block of each stage, classifier.0 Linear '
            f'({FEAT_CHANNELS} -> classes).'
        )
        raise ConversionError('\n'.join(lines))

    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, (dst, _) in layout.items():
        if key in sd:
            out[dst] = sd[key]
        else:  # BN counter absent (old torch); mmpretrain expects one
            out[dst] = torch.tensor(0, dtype=torch.long)
    if with_head:
        for key, (dst, _) in head.items():
            out[dst] = sd[key]
    return out, depth


def convert_st_state_dict(
    state_dict: Mapping[str, Any],
    depth: Optional[int] = None,
    *,
    with_head: bool = True,
) -> 'OrderedDict[str, torch.Tensor]':
    """Map the authors' ResNet state dict onto mmpretrain's key names.

    Args:
        state_dict (Mapping[str, Any]): The authors' state dict, with or
            without DataParallel's ``module.`` prefix.
        depth (int, optional): 50, 101 or 152. Defaults to None: inferred
            from the number of bottleneck blocks.
        with_head (bool): Keep ``classifier.0`` as ``head.fc``. When False
            only ``backbone.*`` keys are returned and the classifier may be
            absent from ``state_dict``. Defaults to True.

    Returns:
        OrderedDict[str, torch.Tensor]: The ``backbone.*`` (and ``head.fc.*``)
        tensors of an mmpretrain ``ImageClassifier`` with a ``ResNet``
        backbone and a ``LinearClsHead``. Every BN gets a
        ``num_batches_tracked`` (0 when the source has none), so the result
        loads with ``strict=True``.

    Raises:
        ConversionError: The layout is not the authors' (the message lists
            the missing and unexpected keys and the shape mismatches).
    """
    return _convert(state_dict, depth, with_head)[0]


def read_checkpoint(path: PathLike, allow_pickle: bool = False) -> Any:
    """``torch.load`` a file onto the CPU, safely unless told otherwise.

    Args:
        path (str | PathLike): The checkpoint file.
        allow_pickle (bool): When the file cannot be loaded with
            ``weights_only=True`` (it holds arbitrary Python objects), load it
            with ``weights_only=False``, which can execute code from the
            file. Defaults to False: refuse with an explanation.

    Returns:
        Any: The loaded object.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConversionError(f'{path}: no such file')
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _weights_only_reason(exc)
        if not allow_pickle:
            raise ConversionError(
                f'cannot load {path} with torch.load(weights_only=True): '
                f'{reason}\n  Either the file is corrupted, or it holds '
                'Python objects besides tensors, numbers, strings and '
                'containers. If you trust where it came from, rerun with '
                '--allow-pickle (torch.load(weights_only=False) can execute '
                'code stored in the file).'
            ) from None
        warnings.warn(
            f'{path}: loading with torch.load(weights_only=False) because '
            f'--allow-pickle was given ({reason})',
            stacklevel=2,
        )
        try:
            return torch.load(path, map_location='cpu', weights_only=False)
        except Exception as exc2:  # noqa: BLE001 - any reader failure
            raise _unreadable(path, exc2) from None
    except Exception as exc:  # noqa: BLE001 - any reader failure
        raise _unreadable(path, exc) from None


def _weights_only_reason(exc: BaseException) -> str:
    """The line of torch's long weights-only message that says what was
    refused (e.g. ``Unsupported global: GLOBAL argparse.Namespace ...``)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if line.startswith('WeightsUnpickler error:'):
            return (
                line[len('WeightsUnpickler error:') :].split('. ')[0].strip()
            )
    return re.sub(r'\x1b\[[0-9;]*m', '', lines[0]) if lines else ''


def _unreadable(path: str, exc: BaseException) -> ConversionError:
    # torch's first sentence says what failed; the rest is generic advice.
    reason = str(exc).strip().split('. ')[0] if str(exc) else ''
    return ConversionError(
        f'cannot read {path}: not a complete PyTorch checkpoint (truncated '
        f'or corrupted?); torch.load raised {type(exc).__name__}: {reason}'
    )


def extract_state_dict(
    checkpoint: Any, source: str = 'the checkpoint'
) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Find the model's state dict in a loaded checkpoint.

    Accepts ``{'state_dict': sd, ...}`` (the authors' ``train.py``),
    ``{'model': sd, ...}`` or a bare state dict.

    Returns:
        tuple[dict, dict]: The state dict and the plain scalars found next to
        it (``epoch``, ``best_acc1``, ``best_acc5``, ``arch``) for the
        converted checkpoint's ``meta``.
    """
    if not isinstance(checkpoint, Mapping):
        raise ConversionError(
            f'{source} holds a {type(checkpoint).__name__}'
            ', not a dict of tensors or a checkpoint dict'
        )
    for container in ('state_dict', 'model'):
        if isinstance(checkpoint.get(container), Mapping):
            state_dict = dict(checkpoint[container])
            break
    else:
        state_dict = dict(checkpoint)
    info = {}
    for key in ('epoch', 'best_acc1', 'best_acc5', 'arch'):
        value = checkpoint.get(key)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, (int, float, str)):
            info[key] = value
    return state_dict, info


def load_authors_checkpoint(
    path: PathLike, allow_pickle: bool = False
) -> Dict[str, Any]:
    """Load the model's state dict (keys as stored) from a checkpoint file.

    Args:
        path (str | PathLike): ``{'state_dict': ...}``, ``{'model': ...}`` or
            a bare state dict saved with ``torch.save``.
        allow_pickle (bool): See :func:`read_checkpoint`.

    Returns:
        dict: The state dict, ``module.`` prefix included if stored so.
    """
    return extract_state_dict(
        read_checkpoint(path, allow_pickle), os.fspath(path)
    )[0]


def _refuse_existing(path: str, force: bool) -> None:
    if os.path.isdir(path):
        raise ConversionError(f'{path} is a directory; give a file name')
    if os.path.lexists(path) and not force:
        raise ConversionError(
            f'{path} already exists; pass --force (force=True) to overwrite it'
        )


def save_checkpoint_atomic(
    obj: Any, path: PathLike, force: bool = False
) -> None:
    """``torch.save`` to ``path`` through the project's atomic writer
    (:func:`mmst.fileio.save_atomic`): a reader never sees a half-written
    ``path``; a failed save (an error, Ctrl-C) removes its temporary file;
    the temporary file of a process killed during the write (kill -9,
    power loss), ``.<name>.<host>.<pid>.<random>.tmp`` next to ``path``, is
    removed by the next save to ``path`` on the same machine, with a
    warning.

    Args:
        obj (Any): What to save.
        path (str | PathLike): The destination file.
        force (bool): Overwrite an existing ``path``. Defaults to False:
            refuse with :class:`ConversionError`.
    """
    path = os.path.abspath(os.fspath(path))
    _refuse_existing(path, force)
    save_atomic(obj, path)


def convert_checkpoint(
    src: PathLike,
    dst: PathLike,
    depth: Optional[int] = None,
    backbone_only: bool = False,
    force: bool = False,
    allow_pickle: bool = False,
) -> Dict[str, Any]:
    """Convert the authors' checkpoint file ``src`` into the mmpretrain
    checkpoint ``dst`` (``{'meta': ..., 'state_dict': ...}``).

    Args:
        src (str | PathLike): The authors' checkpoint.
        dst (str | PathLike): Where to write; written atomically.
        depth (int, optional): 50, 101 or 152; inferred when None.
        backbone_only (bool): Write only the ``backbone.*`` keys, for
            ``init_cfg=dict(type='Pretrained', checkpoint=dst,
            prefix='backbone.')`` in mmdet, mmseg or mmpose.
        force (bool): Overwrite an existing ``dst``.
        allow_pickle (bool): See :func:`read_checkpoint`.

    Returns:
        dict: The ``meta`` written to ``dst`` (depth, number of classes,
        number of tensors, source epoch and accuracies when present).
    """
    src, dst = os.fspath(src), os.fspath(dst)
    _refuse_existing(os.path.abspath(dst), force)
    if (
        os.path.exists(dst)
        and os.path.exists(src)
        and os.path.samefile(src, dst)
    ):
        raise ConversionError(
            f'{dst} is the source checkpoint; write the '
            'converted one elsewhere'
        )
    state_dict, info = extract_state_dict(
        read_checkpoint(src, allow_pickle), src
    )
    converted, depth = _convert(
        state_dict, depth, with_head=not backbone_only, source=src
    )
    meta: Dict[str, Any] = {
        'converted_by': 'mmst tools/model_converters/st_to_mmpretrain.py',
        'source': os.path.basename(src),
        'arch': f'ResNet-{depth}',
        'depth': depth,
        'backbone_only': backbone_only,
        'num_classes': (
            None
            if backbone_only
            else int(converted['head.fc.weight'].shape[0])
        ),
        'num_tensors': len(converted),
    }
    meta.update({f'source_{k}': v for k, v in info.items()})
    save_checkpoint_atomic({'meta': meta, 'state_dict': converted}, dst, force)
    return meta
