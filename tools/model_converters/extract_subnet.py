"""Extract a sub-network of a trained ResNet as a standalone model.

    python tools/model_converters/extract_subnet.py CONFIG CHECKPOINT \\
        --subnet 2,3,5,2 OUT_DIR [--bn-recal-images 2000] [--seed 0] \\
        [--force] [--cfg-options k=v ...]

Writes

- ``OUT_DIR/subnet.pth``: the sub-network's weights with plain mmpretrain
  keys (``backbone.layer1.0.conv1.weight`` ...), without the keys of the
  skipped blocks, and with BN statistics re-estimated for the sub-network
  on ``--bn-recal-images`` training images (0: keep the stored ones);
- ``OUT_DIR/config.py``: the full config (dumped) with the model's backbone
  replaced by ``mmst.ElasticResNet`` / ``mmst.ElasticResNet_CIFAR`` fixed at
  the sub-network (``subnet=[...]``; all other backbone arguments kept). An
  ``mmst.StimulativeTraining`` model is replaced by its ``architecture``.

The BN re-estimation is exactly that of
``tools/analysis_tools/loafing.py`` (same images, augmentations and order
for the same ``--seed`` and ``--bn-recal-images``), so

    python tools/test.py OUT_DIR/config.py OUT_DIR/subnet.pth

reports the accuracy the loafing table gives for this sub-network.
"""

import argparse
import copy
import os
import os.path as osp
import sys
import tempfile
from typing import List, Optional, Sequence

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.registry import init_default_scope

from mmst.apis.launch import ST_TYPES
from mmst.engine import recalibrate_bn
from mmst.models.algorithms.stimulative import unwrap_st
from mmst.registry import MODELS

PROG = 'extract_subnet'
HERE = osp.dirname(osp.abspath(__file__))
LOAFING = osp.join(osp.dirname(HERE), 'analysis_tools', 'loafing.py')
# backbone type (with or without scope) -> the fixed-depth mmst type
BACKBONE_TYPES = {
    'ResNet': 'mmst.ElasticResNet',
    'mmpretrain.ResNet': 'mmst.ElasticResNet',
    'ElasticResNet': 'mmst.ElasticResNet',
    'mmst.ElasticResNet': 'mmst.ElasticResNet',
    'ResNet_CIFAR': 'mmst.ElasticResNet_CIFAR',
    'mmpretrain.ResNet_CIFAR': 'mmst.ElasticResNet_CIFAR',
    'ElasticResNet_CIFAR': 'mmst.ElasticResNet_CIFAR',
    'mmst.ElasticResNet_CIFAR': 'mmst.ElasticResNet_CIFAR',
}
LOOP_TYPES = ('SubnetValLoop', 'mmst.SubnetValLoop')
CONFIG_NAME = 'config.py'
CHECKPOINT_NAME = 'subnet.pth'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG,
        description='Write a sub-network of a trained ResNet as a '
        'standalone config + checkpoint',
    )
    p.add_argument('config', help='config of the trained model')
    p.add_argument('checkpoint', help='its checkpoint')
    p.add_argument('out_dir', help='output folder')
    p.add_argument(
        '--subnet',
        required=True,
        help='blocks kept per stage (the first ones), e.g. 2,3,5,2',
    )
    p.add_argument(
        '--bn-recal-images',
        type=int,
        default=2000,
        help="training images to re-estimate the sub-network's BN "
        'statistics on (0: keep the stored statistics)',
    )
    p.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the re-estimation images (as loafing.py --seed)',
    )
    p.add_argument(
        '--force', action='store_true', help='overwrite existing outputs'
    )
    p.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value',
    )
    return p.parse_args(argv)


def parse_depths(text: str) -> List[int]:
    """``'2,3,5,2'`` -> ``[2, 3, 5, 2]``."""
    parts = str(text).strip('[]() ').replace(' ', '').split(',')
    try:
        depths = [int(p) for p in parts]
    except ValueError:
        depths = []
    if not depths:
        raise ValueError(
            f'--subnet={text!r} is invalid; allowed: comma-separated '
            'numbers of blocks kept per stage, e.g. 2,3,5,2'
        )
    return depths


def check_depths(depths: List[int], stage_depths: List[int]) -> None:
    """Raise a ValueError naming the stage when ``depths`` does not fit."""
    text = ','.join(map(str, depths))
    if len(depths) != len(stage_depths):
        raise ValueError(
            f'--subnet={text} is invalid: {len(depths)} values for '
            f'{len(stage_depths)} stages (blocks per stage: '
            f'{",".join(map(str, stage_depths))}); allowed: one value per '
            'stage'
        )
    for i, (k, n) in enumerate(zip(depths, stage_depths)):
        if not 1 <= k <= n:
            raise ValueError(
                f'--subnet={text} is invalid: stage {i + 1} '
                f'(layer{i + 1}) keeps {k} blocks; allowed: 1..{n} '
                f'(blocks per stage: {",".join(map(str, stage_depths))})'
            )


def fixed_model_cfg(cfg: Config, depths: List[int]) -> ConfigDict:
    """The config's model (an ST model's ``architecture``) with its
    backbone fixed at ``depths``."""
    model = copy.deepcopy(cfg.model)
    if model.get('type') in ST_TYPES:
        model = model['architecture']
    model = ConfigDict(model)
    backbone = model.get('backbone')
    btype = backbone.get('type') if isinstance(backbone, dict) else None
    if btype not in BACKBONE_TYPES:
        raise ValueError(
            f'model.backbone.type={btype!r} is not supported; allowed: '
            + ' | '.join(sorted(set(BACKBONE_TYPES)))
            + ' (mmpretrain ResNets, fixed with mmst.ElasticResNet*)'
        )
    backbone['type'] = BACKBONE_TYPES[btype]
    backbone['subnet'] = list(depths)
    return model


def write_config(
    cfg: Config, model: ConfigDict, checkpoint: str, path: str
) -> None:
    """Dump ``cfg`` with ``model``, plain validation / test loops and
    MMEngine's default data-parallel wrapper."""
    out = copy.deepcopy(cfg)
    out.model = model
    for key in ('val_cfg', 'test_cfg'):
        loop = out.get(key)
        if isinstance(loop, dict) and loop.get('type') in LOOP_TYPES:
            # The sub-network is fixed: nothing elastic to evaluate.
            out[key] = dict()
    wrapper = out.get('model_wrapper_cfg')
    if isinstance(wrapper, dict) and str(wrapper.get('type', '')).endswith(
        'STDistributedDataParallel'
    ):
        # ST's wrapper needs an ST model; MMEngine's default fits the rest.
        out.pop('model_wrapper_cfg')
    imports = out.get('custom_imports') or dict(
        imports=[], allow_failed_imports=False
    )
    if 'mmst' not in imports.get('imports', []):
        imports['imports'] = [*imports.get('imports', []), 'mmst']
    out.custom_imports = imports
    out.load_from = checkpoint
    out.resume = False
    out.dump(path)


def atomic_save(obj: dict, path: str) -> None:
    fd, tmp = tempfile.mkstemp(
        prefix='.' + osp.basename(path), dir=osp.dirname(path)
    )
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.bn_recal_images < 0:
        raise ValueError(
            f'--bn-recal-images={args.bn_recal_images} is invalid; '
            'allowed: an integer >= 0'
        )
    depths = parse_depths(args.subnet)
    out_cfg = osp.join(args.out_dir, CONFIG_NAME)
    out_ckpt = osp.join(args.out_dir, CHECKPOINT_NAME)
    existing = [p for p in (out_cfg, out_ckpt) if osp.exists(p)]
    if existing and not args.force:
        raise FileExistsError(
            f'{" and ".join(existing)} already exist(s); pass --force to '
            'overwrite'
        )
    # the shared helpers of the analysis tools
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location('mmst_tools_loafing', LOAFING)
    loafing = module_from_spec(spec)
    spec.loader.exec_module(loafing)

    cfg = loafing.load_config(args.config, args.cfg_options)
    model_cfg = fixed_model_cfg(cfg, depths)
    with tempfile.TemporaryDirectory(prefix='mmst_extract_') as tmp:
        runner = loafing.build_runner(cfg, tmp)
        ckpt = loafing.load_weights(runner, args.checkpoint)
        model = runner.model
        arch = unwrap_st(model)
        elastic, _ = loafing.model_space(model)
        check_depths(depths, elastic.stage_depths)
        subnet = tuple(tuple(range(k)) for k in depths)
        used = 0
        if args.bn_recal_images:
            recal = loafing.build_recal_loader(cfg, args.seed)
            with elastic.activate(subnet):
                used = recalibrate_bn(arch, recal, args.bn_recal_images)
        full_state = arch.state_dict()
        val_loader, _ = loafing.build_evaluation(runner, cfg)
        shape = loafing.input_shape_of(model, val_loader)
        full_params = loafing.count_params(arch, elastic, None)
        full_flops = loafing.count_flops(arch, shape, elastic, None)

    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    fixed = MODELS.build(copy.deepcopy(model_cfg))
    keys = list(fixed.state_dict())
    missing = [k for k in keys if k not in full_state]
    if missing:
        raise ValueError(
            f'the fixed model has keys the trained model lacks: '
            f'{missing[:12]} ({len(missing)} in all)'
        )
    state = {k: full_state[k].detach().cpu().clone() for k in keys}
    fixed.load_state_dict(state, strict=True)
    fixed.eval()
    params = sum(p.numel() for p in fixed.parameters())
    flops = loafing.count_flops(fixed, shape)

    src_meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
    meta = dict(
        mmst_subnet=dict(
            subnet=depths,
            source_config=osp.abspath(args.config),
            source_checkpoint=osp.abspath(args.checkpoint),
            bn_recal_images=used,
            seed=args.seed,
            params=params,
            flops=flops,
        )
    )
    for key in ('dataset_meta', 'epoch', 'iter'):
        if key in src_meta:
            meta[key] = src_meta[key]
    os.makedirs(args.out_dir, exist_ok=True)
    atomic_save(dict(meta=meta, state_dict=state), out_ckpt)
    write_config(cfg, model_cfg, osp.abspath(out_ckpt), out_cfg)

    dropped = len(full_state) - len(state)
    summary = dict(
        subnet=depths,
        config=out_cfg,
        checkpoint=out_ckpt,
        bn_recal_images=used,
        params=params,
        full_params=full_params,
        flops=flops,
        full_flops=full_flops,
        dropped_keys=dropped,
    )
    flops_text = (
        f', {flops / 1e6:.2f} of {full_flops / 1e6:.2f} MFLOPs'
        if flops and full_flops
        else ''
    )
    print(
        f'sub-network [{",".join(map(str, depths))}]: '
        f'{params / 1e6:.3f} of {full_params / 1e6:.3f} M parameters'
        f'{flops_text}; {dropped} tensors of skipped blocks dropped; BN '
        + (
            f'statistics re-estimated on {used} training images'
            if used
            else 'statistics as stored'
        )
        + f'\nwrote {out_ckpt}\nwrote {out_cfg}\ntest: python tools/test.py '
        f'{out_cfg} {out_ckpt}'
    )
    return summary


if __name__ == '__main__':
    try:
        main()
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f'{PROG}: error: {e}', file=sys.stderr)
        sys.exit(1)
