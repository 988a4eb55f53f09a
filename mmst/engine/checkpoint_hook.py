"""MMEngine's ``CheckpointHook`` with checkpoints a kill cannot break and an
exact resume."""

import logging
import os.path as osp
from typing import Optional

from mmengine.dist import (
    all_gather_object,
    broadcast_object_list,
    get_rank,
    get_world_size,
    is_main_process,
)
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmst.fileio import remove_stale_temporaries, write_atomic
from mmst.registry import HOOKS

from . import work_dir_lock
from .checkpoint import (
    ATOMIC_BACKEND,
    check_resume_file,
    find_resume_checkpoint,
    get_rng_state,
    set_rng_state,
)

#: The key of the per-rank random states in a checkpoint.
RNG_KEY = 'rng_states'


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) whose checkpoints survive kills
    and full disks, and whose resume is exact.

    What it changes, and nothing else:

    - **Atomic files.** ``epoch_N.pth`` / ``iter_N.pth``, ``best_*.pth``
      and ``last_checkpoint`` are written through a temporary file and a
      rename (:class:`mmst.engine.checkpoint.AtomicLocalBackend`, the
      default ``backend_args``; a ``backend_args`` of your own, e.g. a
      remote store, is used as given). Old checkpoints (``max_keep_ckpts``)
      are removed only after the new one and ``last_checkpoint`` are
      complete. Temporary files a dead process left are removed at the
      start of training.
    - **Resume falls back.** ``--resume`` without a file continues from
      ``last_checkpoint``'s checkpoint when it is complete, else from the
      newest complete ``epoch_N`` / ``iter_N``, logging each skipped file
      and why (:func:`mmst.engine.checkpoint.find_resume_checkpoint`). A
      named ``--resume FILE`` that is incomplete is an error.
    - **Random state.** Every checkpoint holds each rank's Python, numpy
      and torch (CPU, CUDA) random states (``checkpoint['rng_states']``,
      one per rank), restored at ``before_train`` of a resumed run; the
      validation loop's draws (e.g. its dataloader's seed) are undone after
      validation, so training's random streams are the same whether or not
      a run was interrupted. A resumed epoch-based run then equals the
      uninterrupted one bit for bit. Not restored: a different number of
      processes (logged), ``persistent_workers=True`` dataloader workers'
      own states, and the batches MMEngine's iteration-based loop replays
      to fast-forward its dataloader (docs/troubleshooting.md).
    - **One training per work dir.** A training run holds the work dir's
      lock (:mod:`mmst.engine.work_dir_lock`) from ``before_run`` to
      ``after_run``, so that an upstream ``tools/train.py`` gets it too;
      mmst's ``tools/train.py`` takes it earlier, before the Runner writes
      anything (a second run is refused there).

    Use it in any config (mmst's configs do)::

        custom_imports = dict(imports=['mmst'])
        default_hooks = dict(checkpoint=dict(type='mmst.SafeCheckpointHook',
                                             interval=1))
    """

    def __init__(self, *args, backend_args: Optional[dict] = None, **kwargs):
        if backend_args is None and kwargs.get('file_client_args') is None:
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args, **kwargs)
        self._rng_states = None  # all ranks' states for the next save
        self._val_rng = None  # this rank's state before validation
        self._resumed_rng = None  # this rank's state from the checkpoint
        self._lock = None

    # -- resume ------------------------------------------------------------
    def before_run(self, runner) -> None:
        """Lock the work dir of a training run; choose the checkpoint an
        auto ``--resume`` continues from, and refuse an incomplete
        ``--resume FILE`` in one line."""
        if runner._train_loop is None or isinstance(runner._train_loop, dict):
            return  # not training (Runner.val / Runner.test)
        self._lock = work_dir_lock.acquire(runner.work_dir, reentrant=True)
        if not getattr(runner, '_resume', False):
            return
        load_from = runner._load_from
        if load_from is not None:
            check_resume_file(load_from)
            return
        choice = [None, []]
        if is_main_process():
            choice = list(find_resume_checkpoint(runner.work_dir))
        broadcast_object_list(choice)
        path, notes = choice
        for note in notes:
            print_log(
                f'skipped for --resume: {note}', 'current', logging.WARNING
            )
        if path is not None:
            print_log(f'--resume: continuing from {path}', 'current')
            runner._load_from = path

    def after_run(self, runner) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get(RNG_KEY)
        if states is None:
            self._resumed_rng = None
            return
        if len(states) != get_world_size():
            print_log(
                f'the checkpoint holds the random states of {len(states)} '
                f'processes and this run has {get_world_size()}: they are '
                'not restored (the resumed run draws other augmentations '
                'than an uninterrupted one)',
                'current',
                logging.WARNING,
            )
            self._resumed_rng = None
            return
        self._resumed_rng = states[get_rank()]

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if is_main_process():
            for path in remove_stale_temporaries(self.out_dir):
                print_log(
                    f'removed {path} (an interrupted checkpoint write)',
                    'current',
                )
        # restore only when resuming (a ``load_from`` fine-tune starts at 0)
        if self._resumed_rng is not None and runner.iter > 0:
            set_rng_state(self._resumed_rng)
        self._resumed_rng = None

    # -- validation does not consume training's random streams ------------
    def before_val(self, runner) -> None:
        self._val_rng = get_rng_state()
        # a best checkpoint saved during validation holds training's states
        self._rng_states = all_gather_object(self._val_rng)

    def after_val(self, runner) -> None:
        if self._val_rng is not None:
            set_rng_state(self._val_rng)
        self._val_rng = self._rng_states = None

    # -- saving ------------------------------------------------------------
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._rng_states is not None:
            checkpoint[RNG_KEY] = self._rng_states

    def _save_checkpoint_with_step(self, runner, step, meta):
        """Save ``step``'s checkpoint, then ``last_checkpoint``, and only
        then remove the checkpoints beyond ``max_keep_ckpts``."""
        in_val = self._val_rng is not None
        if not in_val:  # all ranks take part in the gather
            self._rng_states = all_gather_object(get_rng_state())
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        expired = []
        if self.max_keep_ckpts > 0 and not (
            self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step
        ):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                expired.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info(
                'keep_ckpt_ids', list(self.keep_ckpt_ids)
            )
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args,
        )
        if not in_val:
            self._rng_states = None
        if not is_main_process():
            return
        # MMEngine writes it with open() into the (local) work dir, too
        write_atomic(
            self.last_ckpt, osp.join(runner.work_dir, 'last_checkpoint')
        )
        for old in expired:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(old)
            )
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)
