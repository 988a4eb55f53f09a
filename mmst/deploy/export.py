"""Export a trained sub-network as a standalone model: a plain (non-ST)
config and checkpoint that ``tools/test.py`` and the upstream inference
APIs run, and optionally an ONNX file (``docs/analysis.md``, "Exporting a
sub-network").

The exported config is :func:`mmst.apis.plain_config` of the training
config (the plain upstream model, MMEngine's loops) with the model's
backbone replaced by ``mmst.SubnetBackbone`` (the original backbone config
and the blocks kept per stage; :mod:`mmst.models.backbones.subnet_backbone`):
the original backbone class with the skipped blocks replaced by
parameter-free identities. The checkpoint holds the kept blocks' tensors
under their original keys (the skipped blocks' keys are dropped) with BN
statistics re-estimated for the sub-network exactly as the loafing table
and ``SubnetValLoop`` re-estimate them (same seeded loader, same images,
same augmentations), so ``tools/test.py OUT/config.py OUT/subnet.pth``
gives the number the loafing table gives for that member (bit for bit in
one CPU process with the same thread count).

Works for any backbone :class:`mmst.subnet.ElasticDepth` runs (ResNet
family, mmdet / mmseg / mmpose ResNets, mmpretrain MobileNetV3 and
VisionTransformer, ``elastic_stages`` declared for the ST model) and any
task mmst trains (classifier, detector, segmentor, pose estimator).
"""

import copy
import os
import os.path as osp
import tempfile
from typing import Dict, Iterable, Optional, Sequence, Tuple, Union

import torch.nn as nn
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from mmst.analysis.cost import count_flops, count_params
from mmst.analysis.sweep import (
    build_recal_loader,
    build_runner,
    check_bn_recal_images,
    input_shape_of,
    load_config,
    load_weights,
    model_space,
)
from mmst.apis import init_model, plain_config, prepare_config
from mmst.apis.inference import is_st_model
from mmst.converters.checkpoint_io import check_readable
from mmst.engine import preserved_bn_stats, recalibrate_bn
from mmst.engine.bn_recal import has_trainable_bn
from mmst.fileio import save_atomic
from mmst.models.algorithms.stimulative import unwrap_st
from mmst.registry import MODELS
from mmst.subnet import resolve_subnet_depths
from mmst.subnet.space import Subnet

CONFIG_NAME = 'config.py'
CHECKPOINT_NAME = 'subnet.pth'
ONNX_NAME = 'subnet.onnx'
SUBNET_BACKBONE = 'mmst.SubnetBackbone'


# -- the sub-network ------------------------------------------------------
def subnet_config(
    cfg: Config, depths: Sequence[int], checkpoint: Optional[str] = None
) -> Config:
    """The plain config of the sub-network: :func:`mmst.apis.plain_config`
    of ``cfg`` with ``model.backbone`` replaced by ``mmst.SubnetBackbone``
    (the original backbone config, ``subnet=depths`` and the ST model's
    ``elastic_stages`` if it declares them), ``custom_imports`` importing
    mmst, and ``load_from=checkpoint``.

    Raises:
        ValueError: The model has no backbone config, or it is fixed at a
            sub-network already.
    """
    stages = None
    if is_st_model(cfg.get('model')):
        stages = cfg.model.get('elastic_stages')
    out = plain_config(cfg)
    backbone = out.model.get('backbone')
    if not isinstance(backbone, dict):
        raise ValueError(
            f'model.backbone={backbone!r} is invalid for export; allowed: '
            'a backbone config dict (the model mmst trains elastically)'
        )
    if backbone.get('type') in (SUBNET_BACKBONE, 'SubnetBackbone'):
        raise ValueError(
            f'model.backbone.type={backbone.get("type")!r}: the model is a '
            'fixed sub-network already; export from the training config'
        )
    fixed = dict(
        type=SUBNET_BACKBONE,
        backbone=copy.deepcopy(backbone),
        subnet=list(depths),
    )
    if stages is not None:
        fixed['elastic_stages'] = copy.deepcopy(stages)
    out.model.backbone = ConfigDict(fixed)
    imports = out.get('custom_imports') or dict(
        imports=[], allow_failed_imports=False
    )
    if 'mmst' not in imports.get('imports', []):
        imports['imports'] = [*imports.get('imports', []), 'mmst']
    out.custom_imports = imports
    out.load_from = checkpoint
    out.resume = False
    return out


def build_model(
    cfg: Union[str, Config],
    checkpoint: Optional[str] = None,
    strict: bool = True,
) -> nn.Module:
    """The config's model (plain: an ST config's architecture), with
    ``checkpoint`` loaded, in eval mode on the CPU
    (:func:`mmst.apis.init_model`).

    Args:
        cfg (str | Config): A config file or a loaded config.
        checkpoint (str, optional): A checkpoint to load.
        strict (bool): Refuse a missing, unexpected or mis-shaped key.
            Defaults to True.

    Returns:
        nn.Module: The model.

    Raises:
        CheckpointError: See :func:`mmst.apis.init_model`.
    """
    return init_model(cfg, checkpoint, strict=strict)


def output_paths(out_dir: str, onnx: bool = False) -> Dict[str, str]:
    """The files :func:`export_subnet` writes to ``out_dir``."""
    paths = dict(
        config=osp.join(out_dir, CONFIG_NAME),
        checkpoint=osp.join(out_dir, CHECKPOINT_NAME),
    )
    if onnx:
        paths['onnx'] = osp.join(out_dir, ONNX_NAME)
    return paths


def check_outputs(paths: Iterable[str], force: bool = False) -> None:
    """Refuse to overwrite existing files unless ``force``.

    Raises:
        FileExistsError: Naming the files and ``--force``.
    """
    existing = [p for p in paths if osp.exists(p)]
    if existing and not force:
        raise FileExistsError(
            f'{" and ".join(existing)} already exist(s); pass --force '
            '(force=True) to overwrite'
        )


def export_model_subnet(
    cfg: Config,
    model: nn.Module,
    subnet: Union[str, Sequence, Subnet],
    out_dir: str,
    bn_recal_images: int = 2000,
    seed: int = 0,
    recal_loader: Optional[Iterable] = None,
    input_shape: Optional[Sequence[int]] = None,
    force: bool = False,
    onnx: bool = False,
    onnx_images: int = 8,
    source: Optional[dict] = None,
    meta: Optional[dict] = None,
) -> dict:
    """Export a sub-network of an already built model with loaded weights
    (e.g. the runner's model of the loafing table or the depth menu).

    The model's own BN statistics are left as they were.

    Args:
        cfg (Config): The config ``model`` was built from (prepared, as
            :func:`mmst.analysis.load_config` returns it).
        model (nn.Module): The (ST or plain) model, weights loaded.
        subnet (str | Sequence | Subnet): The member, see
            :func:`~mmst.subnet.resolve_subnet_depths`.
        out_dir (str): Output folder (created).
        bn_recal_images (int): Training images to re-estimate the
            sub-network's BN statistics on (0: keep the stored ones; not
            used, no image read, when no BN layer trains: ``norm_eval``,
            frozen, LayerNorm only). Defaults to 2000.
        seed (int): Seed of the re-estimation images (as the loafing
            table's ``seed``). Defaults to 0.
        recal_loader (Iterable, optional): The re-estimation loader
            (default: :func:`mmst.analysis.build_recal_loader` of ``cfg``
            with ``seed``).
        input_shape (Sequence[int], optional): (C, H, W) for FLOPs and the
            ONNX export (default: the first val / test input's).
        force (bool): Overwrite existing outputs. Defaults to False.
        onnx (bool): Also write ``subnet.onnx`` and check it against
            PyTorch on ``onnx_images`` test images (:func:`export_onnx`,
            :func:`onnx_parity`; a file that differs by more than the
            rounding bound is removed and a ValueError raised, the config
            and checkpoint stay). Defaults to False.
        onnx_images (int): Test images of the parity check. Defaults to 8.
        source (dict, optional): ``config`` / ``checkpoint`` paths recorded
            in the checkpoint's meta.
        meta (dict, optional): The source checkpoint's meta
            (``dataset_meta``, ``epoch``, ``iter`` are kept).

    Returns:
        dict: ``config``, ``checkpoint`` (paths), ``subnet`` (blocks per
        stage), ``bn_recal_images`` (images used; 0 when none was
        needed), ``params``, ``flops``,
        ``full_params``, ``full_flops``, ``dropped_keys``, ``input_shape``
        and, with ``onnx``, ``onnx`` (path) and ``onnx_parity``.

    Raises:
        ValueError: An invalid argument, or a model this cannot export.
        FileExistsError: Outputs exist and ``force`` is False.
    """
    check_bn_recal_images(bn_recal_images)
    from .onnx import check_onnx_task, eval_inputs, export_onnx, onnx_parity

    paths = output_paths(out_dir, onnx)
    check_outputs(paths.values(), force)
    arch = unwrap_st(model)
    elastic, space = model_space(model)
    depths = resolve_subnet_depths(subnet, space)
    kept = tuple(tuple(range(k)) for k in depths)
    if onnx:
        check_onnx_task(arch)
    if input_shape is None:
        input_shape = _first_input_shape(cfg, model)

    used = 0
    with preserved_bn_stats(arch):
        # no BN layer trains (norm_eval, LayerNorm only): nothing to redo
        if bn_recal_images and has_trainable_bn(arch):
            if recal_loader is None:
                recal_loader = build_recal_loader(cfg, seed)
            with elastic.activate(kept):
                used = recalibrate_bn(arch, recal_loader, bn_recal_images)
        full_state = {
            k: v.detach().cpu().clone() for k, v in arch.state_dict().items()
        }
    full_params = count_params(arch, elastic, None)
    full_flops = count_flops(arch, input_shape, elastic, None)

    out_cfg = subnet_config(cfg, depths, osp.abspath(paths['checkpoint']))
    init_default_scope(out_cfg.get('default_scope') or 'mmst')
    fixed = MODELS.build(copy.deepcopy(out_cfg.model))
    keys = list(fixed.state_dict())
    missing = [k for k in keys if k not in full_state]
    if missing:
        raise ValueError(
            'the fixed model has keys the trained model lacks: '
            f'{missing[:12]} ({len(missing)} in all)'
        )
    state = {k: full_state[k] for k in keys}
    fixed.load_state_dict(state, strict=True)
    fixed.eval()
    params = sum(p.numel() for p in fixed.parameters())
    flops = count_flops(fixed, input_shape)

    meta = meta or {}
    out_meta = dict(
        mmst_subnet=dict(
            subnet=depths,
            backbone=type(fixed.backbone).__name__,
            source_config=(source or {}).get('config'),
            source_checkpoint=(source or {}).get('checkpoint'),
            bn_recal_images=used,
            seed=seed,
            params=params,
            flops=flops,
        )
    )
    for key in ('dataset_meta', 'epoch', 'iter'):
        if key in meta:
            out_meta[key] = meta[key]
    os.makedirs(out_dir, exist_ok=True)
    save_atomic(dict(meta=out_meta, state_dict=state), paths['checkpoint'])
    out_cfg.dump(paths['config'])
    summary = dict(
        config=paths['config'],
        checkpoint=paths['checkpoint'],
        subnet=depths,
        bn_recal_images=used,
        params=params,
        full_params=full_params,
        flops=flops,
        full_flops=full_flops,
        dropped_keys=len(full_state) - len(state),
        input_shape=list(input_shape),
    )
    if onnx:
        info = export_onnx(
            fixed, paths['onnx'], input_shape=input_shape, force=True
        )
        inputs = eval_inputs(out_cfg, fixed, onnx_images)
        try:
            summary['onnx_parity'] = onnx_parity(fixed, info['file'], inputs)
        except ValueError:
            os.remove(info['file'])  # no ONNX file that does not match
            raise
        summary['onnx'] = info['file']
    return summary


def _first_input_shape(cfg: Config, model: nn.Module) -> Tuple[int, ...]:
    for split in ('val', 'test'):
        loader_cfg = cfg.get(f'{split}_dataloader')
        if loader_cfg:
            loader = Runner.build_dataloader(copy.deepcopy(loader_cfg))
            return input_shape_of(model, loader)
    raise ValueError(
        'the config has no val_dataloader / test_dataloader to take the '
        'input size from; pass input_shape'
    )


def export_subnet(
    cfg_or_path: Union[str, Config],
    checkpoint: str,
    subnet: Union[str, Sequence, Subnet],
    out_dir: str,
    bn_recal_images: int = 2000,
    seed: int = 0,
    force: bool = False,
    cfg_options: Optional[dict] = None,
    onnx: bool = False,
    onnx_images: int = 8,
    runner: Optional[Runner] = None,
    strict: bool = True,
) -> dict:
    """Write a sub-network of a trained model as a standalone config +
    checkpoint (and optionally ONNX) in ``out_dir``.

    Args:
        cfg_or_path (str | Config): The training config (mmst ST config or
            plain upstream one), a file or a loaded config.
        checkpoint (str): Its checkpoint.
        subnet (str | Sequence | Subnet): The member
            (:func:`~mmst.subnet.resolve_subnet_depths`: ``'smallest'``,
            ``'1,2,3'``, ``[1, 2, 3]`` ...).
        out_dir (str): Output folder: ``config.py``, ``subnet.pth`` (and
            ``subnet.onnx``).
        bn_recal_images (int): Training images to re-estimate the
            sub-network's BN statistics on (0: the stored ones; not used
            when no BN layer trains). Defaults to 2000, as the loafing
            table.
        seed (int): Seed of the re-estimation images. Defaults to 0.
        force (bool): Overwrite existing outputs. Defaults to False.
        cfg_options (dict, optional): Config overrides.
        onnx (bool): Also export and check ONNX. Defaults to False.
        onnx_images (int): Test images of the ONNX parity check.
        runner (Runner, optional): A runner already built from the config
            (its model's weights are replaced by ``checkpoint``'s).
        strict (bool): Refuse a checkpoint with a missing, unexpected or
            mis-shaped key (:func:`mmst.analysis.load_weights`). Defaults
            to True.

    Returns:
        dict: See :func:`export_model_subnet`.

    Raises:
        ValueError: An invalid argument (named in the message).
        FileExistsError: Outputs exist and ``force`` is False.
        CheckpointError: ``checkpoint`` is unreadable (checked first; a
            missing file is also a ``FileNotFoundError``) or, when
            ``strict``, does not fit the model.
    """
    check_readable(checkpoint)
    paths = output_paths(out_dir, onnx)
    check_outputs(paths.values(), force)
    if isinstance(cfg_or_path, Config):
        cfg = copy.deepcopy(cfg_or_path)
        if cfg_options:
            cfg.merge_from_dict(cfg_options)
        prepare_config(cfg)
        config_path = cfg.filename
    else:
        cfg = load_config(cfg_or_path, cfg_options)
        config_path = osp.abspath(cfg_or_path)
    source = dict(config=config_path, checkpoint=osp.abspath(checkpoint))
    with tempfile.TemporaryDirectory(prefix='mmst_export_') as tmp:
        if runner is None:
            runner = build_runner(cfg, tmp)
        ckpt = load_weights(runner, checkpoint, strict)
        src_meta = ckpt.get('meta', {}) if isinstance(ckpt, dict) else {}
        options = dict(bn_recal_images=bn_recal_images, seed=seed)
        options.update(force=force, onnx=onnx, onnx_images=onnx_images)
        return export_model_subnet(
            cfg,
            runner.model,
            subnet,
            out_dir,
            source=source,
            meta=src_meta,
            **options,
        )
