"""Train an mmst or upstream (mmpretrain / mmdet / mmseg / mmpose) config.

python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]]
    [--resume-model-change] [--amp] [--auto-scale-lr] [--cfg-options k=v ...]
    [--launcher pytorch]
"""

import argparse

from mmengine.config import Config
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from mmst.apis import check_config, prepare_config
from mmst.apis.launch import (
    add_launch_args,
    explain_rank_failures,
    maybe_destroy_process_group,
    parse_launch_args,
    set_work_dir,
)
from mmst.engine import work_dir_lock
from mmst.engine.checkpoint import check_resume_file, find_resume_checkpoint
from mmst.engine.resume_check import check_resume_model
from mmst.stack import load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or (no value) from the latest '
        'checkpoint in the work directory',
    )
    parser.add_argument(
        '--resume-model-change',
        action='store_true',
        help='with --resume: resume even if the model config differs from '
        "the checkpoint's (the differences are logged as a warning)",
    )
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision training'
    )
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate checkpoints during training',
    )
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size',
    )
    add_launch_args(parser)
    return parse_launch_args(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    set_work_dir(cfg, args.work_dir, args.config)
    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'OptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if args.auto_scale_lr:
        if not cfg.get('auto_scale_lr'):
            raise ValueError(
                '--auto-scale-lr needs auto_scale_lr='
                'dict(base_batch_size=...) in the config'
            )
        cfg.auto_scale_lr.enable = True
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.no_validate:  # after --cfg-options, which may set val_* keys
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    return cfg


def main() -> None:
    args = parse_args()
    cfg = merge_args(load_config(args.config), args)
    prepare_config(cfg, args.launcher)
    check_config(cfg)  # mmst's checks, before the Runner writes anything
    # one run per work dir; a stopped/dead rank: one clear error line
    with explain_rank_failures(cfg), work_dir_lock.acquire(cfg.work_dir):
        if cfg.get('resume'):  # the checkpoint the run will resume (the
            # SafeCheckpointHook chooses the same one and logs what it skips)
            if cfg.get('load_from'):
                check_resume_file(cfg.load_from)
            ckpt = (
                cfg.get('load_from') or find_resume_checkpoint(cfg.work_dir)[0]
            )
            check_resume_model(ckpt, cfg, args.resume_model_change)
        runner = (
            Runner.from_cfg(cfg)
            if 'runner_type' not in cfg
            else RUNNERS.build(cfg)
        )
        runner.train()
    maybe_destroy_process_group(args.launcher)


if __name__ == '__main__':
    main()
