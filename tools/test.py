"""Test (evaluate) a checkpoint of an mmst or upstream config.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE.pkl]
        [--show-dir DIR] [--non-strict] [--cfg-options k=v ...]
        [--launcher pytorch]

The model tested is the plain upstream one (:func:`mmst.apis.plain_config`,
applied after ``--cfg-options``): an ST config's ``architecture`` with the
ST checkpoint's plain keys loaded, mmst's loops replaced by MMEngine's, so
testing needs none of mmst's training parts. ``--out`` dumps the predictions
(MMEngine's ``DumpResults`` metric appended to ``test_evaluator``);
``--show-dir`` turns on the task library's visualization hook (see
:func:`enable_show_dir`).

The checkpoint is loaded strictly (:mod:`mmst.converters.checkpoint_io`):
a file that is not a readable checkpoint, or one with a missing,
unexpected or mis-shaped key, ends the run with exit status 1 and a
message naming the file (and the keys) before anything is evaluated.
``--non-strict`` loads the matching keys (MMEngine's non-strict loading)
and logs what was skipped.
"""

import argparse
import os.path as osp
import sys

from mmengine.config import Config, ConfigDict
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmst.apis import check_config, plain_config, prepare_config
from mmst.apis.launch import (
    add_launch_args,
    explain_rank_failures,
    maybe_destroy_process_group,
    parse_launch_args,
    register_scope_modules,
    set_work_dir,
)
from mmst.converters.checkpoint_io import (
    CheckpointError,
    add_non_strict_argument,
    load_state_dict,
    read_checkpoint,
    state_dict_of,
)
from mmst.stack import load_config

# default_hooks.visualization per library: (switch, output-folder key); a
# key of None means the folder is the visualizer's save_dir (mmseg).
SHOW_DIR_KEYS = {
    'mmpretrain': ('enable', 'out_dir'),
    'mmdet': ('draw', 'test_out_dir'),
    'mmseg': ('draw', None),
    'mmpose': ('enable', 'out_dir'),
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='where to save logs and results')
    parser.add_argument(
        '--out', help='dump the predictions to this pickle file (.pkl)'
    )
    parser.add_argument(
        '--show-dir', help='save images with drawn predictions here'
    )
    add_non_strict_argument(parser)
    add_launch_args(parser)
    return parse_launch_args(parser)


def enable_show_dir(cfg: Config, show_dir: str) -> Config:
    """Turn on the config's visualization hook, drawing into ``show_dir``.

    mmpretrain ``VisualizationHook`` and mmpose ``PoseVisualizationHook``
    take ``enable=True, out_dir``; mmdet ``DetVisualizationHook`` takes
    ``draw=True, test_out_dir`` (under ``work_dir/<timestamp>/``, as in
    mmdet); mmseg ``SegVisualizationHook`` takes ``draw=True`` and draws to
    the visualizer's ``save_dir``.

    Args:
        cfg (Config): The full config (modified in place).
        show_dir (str): Output folder of the drawn images.

    Returns:
        Config: ``cfg``.
    """
    scope = cfg.get('default_scope')
    hook = cfg.get('default_hooks', {}).get('visualization')
    if scope not in SHOW_DIR_KEYS or hook is None:
        raise ValueError(
            f'--show-dir needs default_hooks.visualization in a config of '
            f'{" | ".join(SHOW_DIR_KEYS)} (default_scope={scope!r}, '
            f'visualization hook: {hook!r})'
        )
    switch, out_key = SHOW_DIR_KEYS[scope]
    hook[switch] = True
    if out_key is not None:
        hook[out_key] = show_dir
    else:
        cfg.visualizer['save_dir'] = show_dir
    return cfg


def add_dump_results(cfg: Config, out: str) -> Config:
    """Append MMEngine's ``DumpResults`` (predictions to ``out``) to the
    test evaluator."""
    if not out.endswith(('.pkl', '.pickle')):
        raise ValueError(f'--out {out!r}: the file must end with .pkl')
    dump = dict(type='DumpResults', out_file_path=out)
    evaluator = cfg.test_evaluator
    if isinstance(evaluator, (list, tuple)):
        cfg.test_evaluator = [*evaluator, dump]
    elif isinstance(evaluator, (dict, ConfigDict)) and 'metrics' in evaluator:
        metrics = evaluator['metrics']
        if not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        evaluator['metrics'] = [*metrics, dump]
    else:
        cfg.test_evaluator = [evaluator, dump]
    return cfg


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.show_dir is not None:
        enable_show_dir(cfg, args.show_dir)
    if args.out is not None:
        add_dump_results(cfg, args.out)
    return cfg


def test(args: argparse.Namespace) -> dict:
    """Evaluate ``args.checkpoint``; returns the metrics.

    Raises:
        CheckpointError: The checkpoint is unreadable (before the Runner
            is built) or, without ``--non-strict``, does not fit the model.
    """
    cfg = merge_args(load_config(args.config), args)
    register_scope_modules(cfg)
    # mmst's checks (ST settings too), before writing; not the pretrained
    # files: Runner.test never initialises weights (all from CHECKPOINT)
    check_config(cfg, training=False)
    cfg = plain_config(cfg)
    # the Runner copies the (plain) config into the work dir: as
    # NAME_test.py, so that a training run's NAME.py there stays
    stem, ext = osp.splitext(osp.basename(args.config))
    cfg = Config(cfg.to_dict(), cfg.pretty_text, filename=f'{stem}_test{ext}')
    checkpoint = read_checkpoint(args.checkpoint)
    prepare_config(cfg, args.launcher)
    with explain_rank_failures(cfg):  # a stopped/dead rank: one clear line
        runner = (
            Runner.from_cfg(cfg)
            if 'runner_type' not in cfg
            else RUNNERS.build(cfg)
        )
        load_state_dict(
            runner.model,
            state_dict_of(checkpoint, source=args.checkpoint),
            strict=not args.non_strict,
            checkpoint=args.checkpoint,
            config=args.config,
            logger=runner.logger,
        )
        del checkpoint
        # The Runner loads cfg.load_from (the same tensors) again after its
        # hooks' before_run, so that checkpoint hooks (EMA) see it in order.
        return runner.test()


def main() -> None:
    args = parse_args()
    try:
        test(args)
    except CheckpointError as e:
        print(f'tools/test.py: error: {e}', file=sys.stderr)
        sys.exit(1)
    maybe_destroy_process_group(args.launcher)


if __name__ == '__main__':
    main()
