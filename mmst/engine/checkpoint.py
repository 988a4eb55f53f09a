"""Checkpoint files that a kill cannot break, and the random state that
makes a resumed run continue the interrupted one exactly.

Three pieces, used by :class:`mmst.engine.SafeCheckpointHook`:

- :class:`AtomicLocalBackend`, MMEngine's local file backend whose ``put``
  / ``put_text`` write through :func:`mmst.fileio.write_atomic` (a
  temporary file next to the destination, ``fsync``-ed and renamed over
  it). A reader sees the old file or the complete new one, never a
  truncated one; a failed write (a kill, a full disk) leaves the old file
  and at most a hidden ``.NAME.HOST.PID.*.tmp`` that the next run removes
  (:func:`mmst.fileio.remove_stale_temporaries`).
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
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend

from mmst.converters.checkpoint_io import checkpoint_problem
from mmst.fileio import remove_stale_temporaries, write_atomic

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
