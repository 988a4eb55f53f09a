"""Checkpoint files that a kill cannot break, and the random state that
makes a resumed run continue the interrupted one exactly.

Three pieces, used by :class:`mmst.engine.SafeCheckpointHook`:

- :class:`AtomicLocalBackend`, MMEngine's local file backend whose ``put``
  / ``put_text`` write a temporary file next to the destination, ``fsync``
  it and rename it over the destination (``os.replace``, atomic on POSIX
  file systems). A reader sees the old file or the complete new one, never
  a truncated one; a failed write (a kill, a full disk) leaves the old file
  and at most a hidden ``.NAME.PID.tmp`` that the next run removes.
- :func:`find_resume_checkpoint`: the checkpoint ``--resume`` continues
  from, ``last_checkpoint``'s when it is readable, else the newest readable
  ``epoch_N.pth`` / ``iter_N.pth``, with a note per file it skipped.
- :func:`get_rng_state` / :func:`set_rng_state`: Python's, numpy's and
  torch's (CPU and CUDA) global random states in a form
  ``torch.load(weights_only=True)`` reads (tensors, ints, tuples).
"""

import os
import os.path as osp
import random
import re
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend

from mmst.converters.checkpoint_io import checkpoint_problem

__all__ = [
    'ATOMIC_BACKEND',
    'AtomicLocalBackend',
    'check_resume_file',
    'find_resume_checkpoint',
    'get_rng_state',
    'remove_stale_temporaries',
    'set_rng_state',
    'write_atomic',
]

#: ``backend_args=dict(backend=ATOMIC_BACKEND)`` selects AtomicLocalBackend.
ATOMIC_BACKEND = 'mmst_atomic_local'
#: MMEngine's checkpoint names (``CheckpointHook.filename_tmpl``).
CHECKPOINT_NAME = re.compile(r'^(epoch|iter)_(\d+)\.pth$')
#: Temporary files of :func:`write_atomic`: ``.NAME.PID.tmp``.
TEMPORARY_NAME = re.compile(r'^\.(?P<name>.+)\.(?P<pid>\d+)\.tmp$')


def write_atomic(data: Union[bytes, str], path: str) -> None:
    """Write ``data`` to ``path`` through ``.NAME.PID.tmp`` and a rename.

    The temporary file is flushed and ``fsync``-ed before the rename and
    the folder is ``fsync``-ed after it, so after a crash ``path`` holds the
    old content or the complete new one.

    Args:
        data (bytes | str): The content (``str`` is written as UTF-8).
        path (str): The destination; its folder is created if needed.

    Raises:
        OSError: The write failed (e.g. ``ENOSPC``, ``EFBIG``); ``path`` is
            unchanged and the temporary file is removed.
    """
    path = osp.abspath(os.fspath(path))
    folder, name = osp.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = osp.join(folder, f'.{name}.{os.getpid()}.tmp')
    if isinstance(data, str):
        data = data.encode('utf-8')
    try:
        _write_file(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)


def _write_file(path: str, data: bytes) -> None:
    with open(path, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. a platform without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """MMEngine's ``LocalBackend`` whose writes are atomic
    (:func:`write_atomic`); reading, listing and removing are unchanged.

    Select it with ``backend_args=dict(backend='mmst_atomic_local')``
    wherever MMEngine takes ``backend_args`` (``CheckpointHook``,
    ``mmengine.fileio.put``).
    """

    def put(self, obj: bytes, filepath) -> None:
        write_atomic(obj, os.fspath(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        write_atomic(obj.encode(encoding), os.fspath(filepath))


def remove_stale_temporaries(folder: str) -> List[str]:
    """Remove the ``.NAME.PID.tmp`` files in ``folder`` whose process is
    gone (left by a kill or a full disk during :func:`write_atomic`).

    Returns:
        list[str]: The removed files.
    """
    removed = []
    if not osp.isdir(folder):
        return removed
    for entry in sorted(os.listdir(folder)):
        m = TEMPORARY_NAME.match(entry)
        if m is None or _pid_alive(int(m.group('pid'))):
            continue
        try:
            os.unlink(osp.join(folder, entry))
            removed.append(osp.join(folder, entry))
        except FileNotFoundError:
            pass
    return removed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _step(path: str) -> int:
    m = CHECKPOINT_NAME.match(osp.basename(path))
    return int(m.group(2)) if m else -1


def check_resume_file(path: str) -> None:
    """Refuse a named ``--resume FILE`` that is not a complete checkpoint,
    in one line (``tools/train.py`` before the Runner writes anything;
    :class:`mmst.engine.SafeCheckpointHook` for other train scripts).
    Remote names (``scheme://``) are left to MMEngine.

    Raises:
        RuntimeError: ``path`` is missing, truncated or not a checkpoint.
    """
    if '://' in os.fspath(path):
        return
    problem = checkpoint_problem(path)
    if problem is not None:
        raise RuntimeError(
            f'--resume {path}: the checkpoint is {problem}; give a complete '
            'one, or --resume without a file to continue from the newest '
            'complete checkpoint of the work dir'
        )


def find_resume_checkpoint(
    work_dir: str,
) -> Tuple[Optional[str], List[str]]:
    """The checkpoint that ``--resume`` (auto) continues from.

    ``work_dir/last_checkpoint`` names it when that file names a complete
    checkpoint (:func:`checkpoint_problem`). Otherwise (the file is empty,
    names a missing or truncated file, or is absent) it is the complete
    ``epoch_N.pth`` / ``iter_N.pth`` with the largest ``N`` in the work
    dir and in the folder ``last_checkpoint`` names.

    Args:
        work_dir (str): The run's work dir.

    Returns:
        tuple[str | None, list[str]]: The checkpoint (None: nothing to resume
        from) and one note per skipped file saying which and why.

    Raises:
        RuntimeError: Checkpoints exist but none is complete (resuming would
            silently restart the run); lists each with its problem.
    """
    notes: List[str] = []
    pointer = osp.join(work_dir, 'last_checkpoint')
    named = None
    if osp.isfile(pointer):
        with open(pointer, encoding='utf-8', errors='replace') as f:
            named = f.read().strip()
        if not named:
            notes.append(
                f'{pointer} is empty (interrupted while it was written?)'
            )
        else:
            problem = checkpoint_problem(named)
            if problem is None:
                return named, notes
            notes.append(f'{pointer} names {named}, which is {problem}')
    folders = [work_dir]
    if named:
        folders.append(osp.dirname(named))
    candidates = set()
    for folder in folders:
        if osp.isdir(folder):
            candidates.update(
                osp.join(folder, n)
                for n in os.listdir(folder)
                if CHECKPOINT_NAME.match(n)
            )
    for path in sorted(candidates, key=_step, reverse=True):
        if path == named:
            continue
        problem = checkpoint_problem(path)
        if problem is None:
            return path, notes
        notes.append(f'{path} is {problem}')
    if notes and (named or candidates):
        raise RuntimeError(
            f'--resume: no complete checkpoint in {work_dir}:\n'
            + ''.join(f'  - {n}\n' for n in notes)
            + 'Start a new run (without --resume) or restore a checkpoint.'
        )
    return None, notes


def get_rng_state() -> Dict[str, Any]:
    """This process's global random states: Python ``random``, numpy's
    legacy global generator (``np.random.*``, used by mmcv transforms),
    torch's CPU generator and, when CUDA is initialised, every GPU's.

    Returns:
        dict: ``python`` (tuple), ``numpy`` (dict: ``keys`` int64 tensor of
        624 words, ``pos``, ``has_gauss``, ``cached_gaussian``), ``torch``
        (uint8 tensor), ``cuda`` (list of uint8 tensors, optional); loadable
        with ``torch.load(weights_only=True)``.
    """
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = dict(
        python=random.getstate(),
        numpy=dict(
            kind=str(kind),
            keys=torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached),
        ),
        torch=torch.get_rng_state(),
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore what :func:`get_rng_state` returned.

    Raises:
        ValueError: ``state`` lacks one of ``python``, ``numpy``, ``torch``.
    """
    missing = [k for k in ('python', 'numpy', 'torch') if k not in state]
    if missing:
        raise ValueError(
            f'random state without {missing}; allowed: the dict of '
            'mmst.engine.checkpoint.get_rng_state()'
        )
    py = state['python']
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state['numpy']
    np.random.set_state(
        (
            np_state['kind'],
            np_state['keys'].numpy().astype(np.uint32),
            np_state['pos'],
            np_state['has_gauss'],
            np_state['cached_gaussian'],
        )
    )
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
