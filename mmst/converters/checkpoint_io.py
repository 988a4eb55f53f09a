"""Reading checkpoint files and loading them into models, strictly unless
told otherwise: the one implementation behind ``tools/test.py``, the
analysis tools (:func:`mmst.analysis.load_weights`, the depth menu, the
loafing table, the logit magnitude, the sub-network export) and
:func:`mmst.apis.init_model` / :func:`mmst.apis.load_checkpoint`.

- :func:`read_checkpoint` reads a file with
  ``torch.load(weights_only=True)`` (as MMEngine does under torch >= 2.6;
  ``import mmst`` allow-lists the globals MMEngine's own checkpoints
  need). A file it cannot read is :class:`CheckpointError` with ONE line
  naming the file and what it is not, e.g. ``cannot read a.pth: a text
  file, not a PyTorch checkpoint (it starts with 'hello')``.
- :func:`load_state_dict` loads a state dict the way MMEngine's
  ``load_state_dict`` does (module versions, load hooks such as an ST
  model's ``architecture.`` prefix, model wrappers, missing
  ``num_batches_tracked`` ignored) but, when ``strict``, refuses a
  missing, unexpected or mis-shaped key with
  :class:`CheckpointMismatchError`, naming the first few keys of each
  kind, the checkpoint and the config. Non-strict loading loads the
  matching keys and logs what it skipped.
- :func:`load_checkpoint` is both; :func:`load_runner_checkpoint` is
  MMEngine's ``Runner.load_checkpoint`` (the runner's hooks see the
  checkpoint first), strict.

Only ``torch`` and ``mmengine`` are imported: no registration, no task
library.
"""

import logging
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log

#: How many keys of each kind a mismatch message lists before "(+N more)".
MAX_LISTED = 5
#: MMEngine's default ``revise_keys``: a DataParallel ``module.`` prefix is
#: removed.
REVISE_KEYS: Tuple[Tuple[str, str], ...] = ((r'^module\.', ''),)
#: What a mismatch message suggests.
NON_STRICT_HINT = (
    'to load the matching keys anyway (the others keep their initial '
    'values), pass --non-strict (tools) or strict=False (API)'
)
ZIP_MAGIC = b'PK\x03\x04'
# The first bytes looked at to say what a file is.
SNIFF_BYTES = 256

PathLike = Union[str, os.PathLike]


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the
    message names the file."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """The checkpoint file does not exist."""


class CheckpointMismatchError(CheckpointError):
    """A state dict whose keys or shapes do not fit the model.

    Attributes:
        mismatch (StateDictMismatch): The keys, all of them.
    """

    def __init__(self, message: str, mismatch: 'StateDictMismatch'):
        super().__init__(message)
        self.mismatch = mismatch


@dataclass
class StateDictMismatch:
    """What a state dict and a model disagree on.

    Attributes:
        missing (list[str]): Model keys the state dict lacks (BN
            ``num_batches_tracked`` counters excepted, as in MMEngine).
        unexpected (list[str]): State dict keys the model lacks.
        mis_shaped (list[tuple]): ``(key, checkpoint shape, model shape)``.
        errors (list[str]): Other errors torch reported while copying.
    """

    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mis_shaped: List[Tuple[str, tuple, tuple]] = field(default_factory=list)
    errors: List[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.missing or self.unexpected or self.mis_shaped or self.errors
        )

    def counts(self) -> str:
        """E.g. ``'62 missing, 102 unexpected, 1 mis-shaped keys'``."""
        parts = [
            f'{len(self.missing)} missing',
            f'{len(self.unexpected)} unexpected',
            f'{len(self.mis_shaped)} mis-shaped',
        ]
        text = ', '.join(parts) + ' keys'
        if self.errors:
            text += f', {len(self.errors)} other errors'
        return text

    def lines(self, indent: str = '  ') -> List[str]:
        """One line per non-empty kind, up to :data:`MAX_LISTED` keys
        each."""
        out = []
        if self.missing:
            out.append(
                f'{indent}missing ({len(self.missing)}): '
                + format_keys(self.missing)
            )
        if self.unexpected:
            out.append(
                f'{indent}unexpected ({len(self.unexpected)}): '
                + format_keys(self.unexpected)
            )
        if self.mis_shaped:
            shaped = [
                f'{key} {_shape(ckpt)} in the checkpoint, {_shape(own)} in '
                'the model'
                for key, ckpt, own in self.mis_shaped
            ]
            out.append(
                f'{indent}mis-shaped ({len(shaped)}): '
                + format_keys(shaped, sep='; ')
            )
        if self.errors:
            out.append(
                f'{indent}other errors ({len(self.errors)}): '
                + format_keys(self.errors, sep='; ')
            )
        return out


def format_keys(keys: Sequence[str], sep: str = ', ') -> str:
    """The first :data:`MAX_LISTED` of ``keys`` and ``(+N more)``."""
    shown = sep.join(keys[:MAX_LISTED])
    more = len(keys) - MAX_LISTED
    return shown + (f' (+{more} more)' if more > 0 else '')


def _shape(shape: tuple) -> str:
    dims = ', '.join(map(str, shape))
    return f'({dims},)' if len(shape) == 1 else f'({dims})'


# -- reading ----------------------------------------------------------------
def is_remote(filename: str) -> bool:
    """Whether MMEngine's ``CheckpointLoader`` reads ``filename`` from
    elsewhere (``https://``, ``open-mmlab://``, ``s3://`` ...)."""
    return re.match(r'^[A-Za-z][A-Za-z0-9+.-]*://', filename) is not None


def add_non_strict_argument(parser) -> None:
    """Add the evaluation tools' ``--non-strict`` flag to an argparse
    ``parser`` (``args.non_strict``: load with ``strict=False``)."""
    parser.add_argument(
        '--non-strict',
        action='store_true',
        help='load the checkpoint keys that fit the model and log the '
        'missing, unexpected and mis-shaped ones (default: any mismatch is '
        'an error)',
    )


def check_readable(filename: PathLike) -> str:
    """Refuse a checkpoint path that cannot be a checkpoint file, reading
    only its first bytes and (zip format) its end: missing, a directory,
    empty, no read permission, neither of torch's formats (e.g. a text
    file), or a zip checkpoint cut short. Remote names (:func:`is_remote`)
    pass. What only a full read finds (a truncated legacy-format file, a
    refused Python object) :func:`read_checkpoint` reports the same way.

    Args:
        filename (str | PathLike): The checkpoint path.

    Returns:
        str: ``filename`` as a string (``~`` expanded).

    Raises:
        CheckpointNotFoundError: No such file (a ``FileNotFoundError``).
        CheckpointError: Any other of the above; one line, e.g. ``cannot
            read work/: a directory, not a checkpoint file``.
    """
    name = os.fspath(filename)
    if is_remote(name):
        return name
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        raise CheckpointError(
            f'cannot read {name}: a directory, not a checkpoint file'
        )
    if not os.path.exists(path):
        raise CheckpointNotFoundError(f'cannot read {name}: no such file')
    if not os.path.isfile(path):
        raise CheckpointError(
            f'cannot read {name}: not a regular file, not a checkpoint file'
        )
    if not os.access(path, os.R_OK):
        raise CheckpointError(f'cannot read {name}: permission denied')
    if os.path.getsize(path) == 0:
        raise CheckpointError(
            f'cannot read {name}: an empty file (0 bytes), not a PyTorch '
            'checkpoint'
        )
    with open(path, 'rb') as f:
        head = f.read(len(ZIP_MAGIC))
    if head.startswith(b'\x80') or (
        head == ZIP_MAGIC and zipfile.is_zipfile(path)
    ):
        return path  # torch's legacy format (a pickle) or a complete zip
    try:  # torch's own words on what it is not (it fails fast on these)
        torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure
        raise CheckpointError(_unreadable(name, path, exc)) from None
    return path


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint written by ``torch.save``,
    or None when it is: the full check behind ``--resume``'s choice
    (:func:`mmst.engine.checkpoint.find_resume_checkpoint`), where
    :func:`check_readable` is the cheap one of the evaluation tools.

    Checks the zip container ``torch.save`` writes: the file exists, its
    central directory is intact (a truncated file loses it) and every
    member's CRC-32 matches (the file is read once; no unpickling).

    Returns:
        str | None: A short reason, e.g. ``'missing'``,
        ``'truncated or not a torch.save file (no zip directory)'``.
    """
    if not os.path.exists(path):
        return 'missing'
    if not os.path.isfile(path):
        return 'not a file'
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            names = zf.namelist()
    except zipfile.BadZipFile:
        return 'truncated or not a torch.save file (no zip directory)'
    except (OSError, EOFError) as e:
        return f'unreadable ({type(e).__name__}: {e})'
    if bad is not None:
        return f'corrupted (CRC mismatch in {bad})'
    if not any(n.endswith('/data.pkl') or n == 'data.pkl' for n in names):
        return 'not a torch.save file (no data.pkl)'
    return None


def read_checkpoint(
    filename: PathLike, map_location: Any = 'cpu'
) -> Mapping[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``.

    Remote names (:func:`is_remote`) go to MMEngine's
    ``CheckpointLoader`` as ``Runner.load_checkpoint`` does.

    Args:
        filename (str | PathLike): A checkpoint file (``torch.save`` of a
            dict: MMEngine's ``{'meta', 'state_dict', ...}`` or a bare state
            dict).
        map_location (str | callable): As in ``torch.load``. Defaults to
            ``'cpu'``.

    Returns:
        Mapping: The loaded checkpoint.

    Raises:
        CheckpointNotFoundError: No such file.
        CheckpointError: The file is not a readable PyTorch checkpoint;
            ONE line naming the file and what it is not, e.g. ``cannot read
            epoch_3.pth: a truncated or corrupted PyTorch checkpoint (a zip
            archive of 200778 bytes; torch.load: PytorchStreamReader failed
            reading zip archive: failed finding central directory)``.
    """
    name = os.fspath(filename)
    if is_remote(name):
        from mmengine.runner.checkpoint import CheckpointLoader

        checkpoint = CheckpointLoader.load_checkpoint(name, map_location)
    else:
        path = check_readable(name)
        try:
            checkpoint = torch.load(
                path, map_location=map_location, weights_only=True
            )
        except Exception as exc:  # noqa: BLE001 - any reader failure
            raise CheckpointError(_unreadable(name, path, exc)) from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(
            f'cannot read {name}: it holds a {type(checkpoint).__name__}, '
            "not a checkpoint (a dict with a 'state_dict', or a state dict)"
        )
    return checkpoint


def _one_line(text: str) -> str:
    """The first sentence of the first non-empty line, without terminal
    colour codes."""
    text = re.sub(r'\x1b\[[0-9;]*m', '', text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ''
    return lines[0].split('. ')[0].rstrip('.')


def _torch_reason(exc: BaseException) -> str:
    """What torch.load said, in one line."""
    text = str(exc)
    marker = 'WeightsUnpickler error:'  # what the weights-only reader refused
    if marker in text and _one_line(text.split(marker, 1)[1]):
        return _one_line(text.split(marker, 1)[1])
    reason = _one_line(text)
    return f'{type(exc).__name__}: {reason}' if reason else type(exc).__name__


def _as_text(head: bytes) -> Optional[str]:
    """``head`` decoded when it looks like the start of a text file."""
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut off
            return None
        text = head[: exc.start].decode('utf-8')
    printable = all(c.isprintable() or c in '\t\r\n\f' for c in text)
    return text if text.strip() and printable else None


def _unreadable(name: str, path: str, exc: BaseException) -> str:
    """One line: the file and what it is (not)."""
    reason = _torch_reason(exc)
    try:
        size = os.path.getsize(path)
        with open(path, 'rb') as f:
            head = f.read(SNIFF_BYTES)
    except OSError as err:
        return f'cannot read {name}: {err.strerror or err}'
    refused = (
        isinstance(exc, pickle.UnpicklingError)
        and 'Weights only load failed' in str(exc)
        and reason.startswith('Unsupported global')
    )
    if refused and head.startswith((ZIP_MAGIC, b'\x80')):
        return (
            f'cannot read {name}: a PyTorch checkpoint holding Python '
            'objects that torch.load(weights_only=True) refuses '
            f'({reason}); only tensors, numbers, strings, containers '
            "and MMEngine's own checkpoint entries are loaded"
        )
    if head.startswith(ZIP_MAGIC):
        return (
            f'cannot read {name}: a truncated or corrupted PyTorch '
            f'checkpoint (a zip archive of {size} bytes; torch.load: '
            f'{reason})'
        )
    if head.startswith(b'\x80'):
        return (
            f'cannot read {name}: not a readable PyTorch checkpoint (a '
            f'pickle stream of {size} bytes: truncated, corrupted or not '
            f'written by torch.save; torch.load: {reason})'
        )
    text = _as_text(head)
    if text is not None:
        first = text.strip().splitlines()[0][:40]
        return (
            f'cannot read {name}: a text file, not a PyTorch checkpoint (it '
            f'starts with {first!r})'
        )
    return (
        f'cannot read {name}: not a PyTorch checkpoint (it starts with '
        f'bytes {head[:8].hex(" ")}; torch.load: {reason})'
    )


def state_dict_of(
    checkpoint: Mapping[str, Any],
    revise_keys: Sequence[Tuple[str, str]] = REVISE_KEYS,
    source: str = 'the checkpoint',
) -> 'OrderedDict[str, Any]':
    """The model's state dict in a checkpoint, as MMEngine finds it:
    ``checkpoint['state_dict']`` when present, else the checkpoint itself;
    keys revised by ``revise_keys`` (``(pattern, replacement)`` regular
    expressions; default: a ``module.`` prefix removed), the module
    versions (``_metadata``) kept.

    Raises:
        CheckpointError: ``state_dict`` is not a dict.
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, Mapping):
        raise CheckpointError(
            f'cannot read {source}: its state_dict is a '
            f'{type(state_dict).__name__}, not a dict of tensors'
        )
    metadata = getattr(state_dict, '_metadata', OrderedDict())
    revised = OrderedDict(state_dict)
    for pattern, replacement in revise_keys:
        revised = OrderedDict(
            (re.sub(pattern, replacement, k), v) for k, v in revised.items()
        )
    revised._metadata = metadata
    return revised


# -- loading ----------------------------------------------------------------
_SIZE_MISMATCH = re.compile(
    r'^size mismatch for (?P<key>.+?): copying a param with shape '
    r'torch\.Size\(\[(?P<ckpt>[^\]]*)\]\) from checkpoint, the shape in '
    r'current model is torch\.Size\(\[(?P<own>[^\]]*)\]\)\.?$'
)


def _dims(text: str) -> tuple:
    return tuple(int(d) for d in text.split(',') if d.strip())


def _copy_into(module: nn.Module, state_dict: Mapping) -> StateDictMismatch:
    """MMEngine's ``load_state_dict`` recursion (every module's
    ``_load_from_state_dict`` with its version and load hooks), keys
    compared strictly, nothing raised: copies what fits, returns the
    rest."""
    missing: List[str] = []
    unexpected: List[str] = []
    errors: List[str] = []
    metadata = getattr(state_dict, '_metadata', None)
    state_dict = OrderedDict(state_dict)  # the hooks may rename keys
    if metadata is not None:
        state_dict._metadata = metadata

    # imported here: mmengine.model takes seconds (torch.distributed), and
    # ``import mmst`` reaches this module through mmst.engine.checkpoint
    from mmengine.model import BaseTTAModel, is_model_wrapper

    def load(module, local_state_dict, prefix=''):
        if is_model_wrapper(module) or isinstance(module, BaseTTAModel):
            module = module.module
        local_metadata = (
            {} if metadata is None else metadata.get(prefix[:-1], {})
        )
        module._load_from_state_dict(
            local_state_dict,
            prefix,
            local_metadata,
            True,
            missing,
            unexpected,
            errors,
        )
        for name, child in module._modules.items():
            if child is not None:
                child_prefix = prefix + name + '.'
                load(
                    child,
                    {
                        k: v
                        for k, v in local_state_dict.items()
                        if k.startswith(child_prefix)
                    },
                    child_prefix,
                )
        incompatible = nn.modules.module._IncompatibleKeys(missing, unexpected)
        hooks = getattr(module, '_load_state_dict_post_hooks', {})
        for hook in hooks.values():
            hook(module, incompatible)

    load(module, state_dict)
    load = None  # noqa: F841  (break the load -> load reference cycle)
    result = StateDictMismatch(
        missing=[k for k in missing if 'num_batches_tracked' not in k],
        unexpected=list(unexpected),
    )
    for message in errors:
        match = _SIZE_MISMATCH.match(message.strip())
        if match:
            result.mis_shaped.append(
                (
                    match['key'],
                    _dims(match['ckpt']),
                    _dims(match['own']),
                )
            )
        else:
            result.errors.append(_one_line(message))
    return result


def _names(
    model: nn.Module, checkpoint: Optional[str], config: Optional[str]
) -> Tuple[str, str]:
    """``('checkpoint X', 'the ImageClassifier model of CONFIG')``."""
    from mmengine.model import is_model_wrapper

    if is_model_wrapper(model):
        model = model.module
    what = f'checkpoint {checkpoint}' if checkpoint else 'the state dict'
    target = f'the {type(model).__name__} model'
    if config:
        target += f' of {config}'
    return what, target


def load_state_dict(
    model: nn.Module,
    state_dict: Mapping[str, Any],
    *,
    strict: bool = True,
    checkpoint: Optional[str] = None,
    config: Optional[str] = None,
    logger: Union[str, logging.Logger, None] = 'current',
) -> StateDictMismatch:
    """Load ``state_dict`` into ``model``, refusing any mismatch unless
    ``strict`` is False.

    Loads as MMEngine's ``load_state_dict`` does (each module's
    ``_load_from_state_dict``: module versions, load hooks, model
    wrappers unwrapped); missing BN ``num_batches_tracked`` counters are
    ignored, as in MMEngine.

    Args:
        model (nn.Module): The model (a model wrapper is unwrapped).
        state_dict (Mapping): Keys as the model's ``state_dict()`` names
            them (see :func:`state_dict_of`).
        strict (bool): Raise on a missing, unexpected or mis-shaped key.
            Defaults to True. When False the matching tensors are loaded,
            the others keep their values, and a warning lists them.
        checkpoint (str, optional): The checkpoint's name, for messages.
        config (str, optional): The config's name, for messages.
        logger (str | Logger | None): Where the non-strict warning goes
            (MMEngine's ``print_log``). Defaults to ``'current'``.

    Returns:
        StateDictMismatch: What did not fit (empty: everything did).

    Raises:
        CheckpointMismatchError: ``strict`` and something did not fit; the
            message names the checkpoint, the model and its config, counts
            each kind and lists up to :data:`MAX_LISTED` keys of each, e.g.
            ``checkpoint r18.pth does not fit the ImageClassifier model of
            resnet20.py: 0 missing, 36 unexpected, 76 mis-shaped keys``
            then ``unexpected (36): backbone.layer1.0.conv1.weight, ...
            (+31 more)``. The model may be partly loaded (as with
            ``torch.nn.Module.load_state_dict``): discard it.
    """
    mismatch = _copy_into(model, state_dict)
    if not mismatch:
        return mismatch
    what, target = _names(model, checkpoint, config)
    if strict:
        message = '\n'.join(
            [f'{what} does not fit {target}: {mismatch.counts()}']
            + mismatch.lines()
            + [f'  {NON_STRICT_HINT}']
        )
        raise CheckpointMismatchError(message, mismatch)
    print_log(
        '\n'.join(
            [
                f'non-strict loading (--non-strict / strict=False): {what} '
                f'does not fit {target}; skipped {mismatch.counts()} (the '
                "model's own values kept):"
            ]
            + mismatch.lines()
        ),
        logger=logger,
        level=logging.WARNING,
    )
    return mismatch


def load_checkpoint(
    model: nn.Module,
    filename: PathLike,
    *,
    strict: bool = True,
    config: Optional[str] = None,
    map_location: Any = 'cpu',
    revise_keys: Sequence[Tuple[str, str]] = REVISE_KEYS,
    logger: Union[str, logging.Logger, None] = 'current',
) -> Mapping[str, Any]:
    """Read ``filename`` (:func:`read_checkpoint`) and load its state dict
    (:func:`state_dict_of`) into ``model`` (:func:`load_state_dict`),
    strictly unless ``strict`` is False.

    Args:
        model (nn.Module): The model (a model wrapper is unwrapped).
        filename (str | PathLike): The checkpoint.
        strict (bool): See :func:`load_state_dict`. Defaults to True.
        config (str, optional): The model's config, for messages.
        map_location (str | callable): As in ``torch.load``.
        revise_keys (Sequence[tuple]): See :func:`state_dict_of`.
        logger (str | Logger | None): See :func:`load_state_dict`.

    Returns:
        Mapping: The checkpoint (``meta``, ``state_dict`` ...).

    Raises:
        CheckpointNotFoundError: No such file.
        CheckpointError: Unreadable file (one line).
        CheckpointMismatchError: ``strict`` and the state dict does not fit.
    """
    name = os.fspath(filename)
    checkpoint = read_checkpoint(name, map_location)
    load_state_dict(
        model,
        state_dict_of(checkpoint, revise_keys, name),
        strict=strict,
        checkpoint=name,
        config=config,
        logger=logger,
    )
    return checkpoint


def load_runner_checkpoint(
    runner,
    filename: PathLike,
    *,
    strict: bool = True,
    config: Optional[str] = None,
    map_location: Any = 'cpu',
    revise_keys: Sequence[Tuple[str, str]] = REVISE_KEYS,
) -> Mapping[str, Any]:
    """MMEngine's ``Runner.load_checkpoint``, strict unless told
    otherwise: read ``filename``, let the runner's hooks see it
    (``after_load_checkpoint``), load it into ``runner.model``, mark the
    runner as loaded.

    Args:
        runner (mmengine.runner.Runner): The runner.
        filename (str | PathLike): The checkpoint.
        strict (bool): See :func:`load_state_dict`. Defaults to True.
        config (str, optional): The config, for messages. Defaults to the
            runner's config file.
        map_location (str | callable): As in ``torch.load``.
        revise_keys (Sequence[tuple]): See :func:`state_dict_of`.

    Returns:
        Mapping: The checkpoint.

    Raises:
        CheckpointNotFoundError, CheckpointError, CheckpointMismatchError:
            See :func:`load_checkpoint`.
    """
    name = os.fspath(filename)
    checkpoint = read_checkpoint(name, map_location)
    runner.call_hook('after_load_checkpoint', checkpoint=checkpoint)
    if config is None:
        config = getattr(runner.cfg, 'filename', None)
    load_state_dict(
        runner.model,
        state_dict_of(checkpoint, revise_keys, name),
        strict=strict,
        checkpoint=name,
        config=config,
        logger=runner.logger,
    )
    runner._has_loaded = True  # as Runner.load_checkpoint
    runner.logger.info(f'Load checkpoint from {name}')
    return checkpoint
