"""ONNX export of a model's ``mode='tensor'`` outputs and the check of a
file against PyTorch (``docs/analysis.md``, "ONNX"), within a bound that
follows from the float32 rounding of the sums the network computes
(:mod:`mmst.deploy.rounding`)."""

import copy
import logging
import os
import os.path as osp
from typing import Iterable, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmst.analysis.cost import TensorOutputs
from mmst.apis import plain_config, prepare_config
from mmst.models.algorithms.stimulative import unwrap_st

from .export import _first_input_shape, build_model, check_outputs
from .rounding import accumulation_length, network_rounding_bound

#: Tasks whose ``mode='tensor'`` output (raw head outputs, no
#: post-processing) :func:`export_onnx` exports.
ONNX_TASKS = ('classification', 'segmentation', 'pose')
ONNX_INSTALL = 'pip install onnx onnxruntime (or pip install mmst[deploy])'


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError as e:
        raise ImportError(
            f'ONNX export needs the onnx and onnxruntime packages ({e}); '
            f'install them: {ONNX_INSTALL}'
        ) from None
    return onnxruntime


def check_onnx_task(model: nn.Module) -> str:
    """The task of ``model`` if :func:`export_onnx` supports it.

    Raises:
        ValueError: Detectors (their outputs need post-processing with
            NMS; export the config + checkpoint and use MMDeploy) and
            models of unknown tasks.
    """
    from mmst.models.tasks import infer_task

    try:
        task = infer_task(unwrap_st(model))
    except TypeError:
        task = None
    if task not in ONNX_TASKS:
        raise ValueError(
            f'ONNX export of {type(unwrap_st(model)).__name__} (task: '
            f'{task or "unknown"}) is not supported; allowed: '
            + ' | '.join(ONNX_TASKS)
            + " (the model's mode='tensor' outputs). For detectors export "
            'the config + checkpoint and convert them with MMDeploy, which '
            'adds the post-processing'
        )
    return task


def export_onnx(
    model_or_config: Union[nn.Module, str, Config],
    out_file: str,
    checkpoint: Optional[str] = None,
    input_shape: Optional[Sequence[int]] = None,
    opset_version: int = 17,
    dynamic_batch: bool = True,
    force: bool = False,
    strict: bool = True,
    fold_bn: bool = True,
) -> dict:
    """Export a model's ``mode='tensor'`` forward to ONNX (TorchScript
    exporter, ``dynamo=False``).

    The graph's input ``inputs`` is the data preprocessor's output (N, C,
    H, W: float, normalised, channel order as the preprocessor gives it);
    its outputs ``output0``, ``output1`` ... are the flattened
    ``mode='tensor'`` outputs (:class:`TensorOutputs`): raw head outputs
    without post-processing (no softmax, no resizing, no decoding).

    Args:
        model_or_config (nn.Module | str | Config): A plain model (e.g.
            from :func:`build_model`) or a config (with ``checkpoint``).
        out_file (str): The ``.onnx`` file.
        checkpoint (str, optional): With a config: the weights.
        input_shape (Sequence[int], optional): (C, H, W) of the traced
            input (default: the config's first val / test input; needed
            with a model).
        opset_version (int): ONNX opset. Defaults to 17.
        dynamic_batch (bool): A dynamic batch axis. Defaults to True.
        force (bool): Overwrite ``out_file``. Defaults to False.
        strict (bool): With a config: refuse a checkpoint that does not fit
            the model (:func:`mmst.apis.init_model`). Defaults to True.
        fold_bn (bool): Let the exporter fold BN layers into the
            convolutions before them (and fold constants). False keeps them
            as ``BatchNormalization`` nodes with the parameters under their
            PyTorch names (ONNX Runtime folds them when it loads the file;
            :func:`mmst.deploy.export_family_onnx` shares the weights of
            its members this way). Defaults to True.

    Returns:
        dict: ``file``, ``input_shape``, ``outputs`` (names),
        ``opset_version``.

    Raises:
        ImportError: onnx / onnxruntime missing (names the install).
        ValueError: Unsupported model (:func:`check_onnx_task`), no input
            shape.
        FileExistsError: ``out_file`` exists and ``force`` is False.
    """
    _require_onnx()
    check_outputs([out_file], force)
    if isinstance(model_or_config, nn.Module):
        model = unwrap_st(model_or_config)
        if input_shape is None:
            raise ValueError(
                'input_shape=None is invalid with a model; allowed: (C, H, '
                'W) of the preprocessed input, e.g. (3, 224, 224)'
            )
    else:
        cfg = plain_config(model_or_config)
        prepare_config(cfg)
        model = build_model(cfg, checkpoint, strict)
        if input_shape is None:
            input_shape = _first_input_shape(cfg, model)
    check_onnx_task(model)
    wrapper = TensorOutputs(model).eval()
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device('cpu')
    dummy = torch.zeros((1, *input_shape), device=device)
    with torch.no_grad():
        n_out = len(wrapper(dummy))
    outputs = [f'output{i}' for i in range(n_out)]
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {name: {0: 'batch'} for name in ['inputs', *outputs]}
    os.makedirs(osp.dirname(osp.abspath(out_file)), exist_ok=True)
    was_training = model.training
    try:
        torch.onnx.export(
            wrapper,
            (dummy,),
            out_file,
            input_names=['inputs'],
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            opset_version=opset_version,
            dynamo=False,
            **(
                {}
                if fold_bn
                else dict(
                    training=torch.onnx.TrainingMode.PRESERVE,
                    do_constant_folding=False,
                )
            ),
        )
    finally:
        # the exporter restores the wrapper's (eval) mode; keep the model's
        model.train(was_training)
    return dict(
        file=out_file,
        input_shape=list(input_shape),
        outputs=outputs,
        opset_version=opset_version,
    )


def split_loader(cfg: Config, split: str, **overrides):
    """The config's ``{split}_dataloader`` built in this process (no
    worker processes), with ``overrides`` (e.g. ``batch_size``).

    Raises:
        ValueError: The config has no ``{split}_dataloader``.
    """
    loader_cfg = cfg.get(f'{split}_dataloader')
    if not loader_cfg:
        raise ValueError(
            f'split={split!r} is invalid: the config has no {split}_dataloader'
            '; allowed: test | val'
        )
    loader_cfg = copy.deepcopy(loader_cfg)
    loader_cfg.update(overrides, num_workers=0, persistent_workers=False)
    return Runner.build_dataloader(loader_cfg)


def eval_inputs(
    cfg: Config, model: nn.Module, num_images: int = 8, split: str = 'test'
) -> List[torch.Tensor]:
    """Preprocessed input batches of the first ``num_images`` images of
    the config's ``split`` loader (``test``, else ``val``).

    Returns:
        list[Tensor]: (N, C, H, W) batches, ``num_images`` images in all
        (fewer when the data set is smaller).
    """
    if not cfg.get(f'{split}_dataloader') and not cfg.get('val_dataloader'):
        raise ValueError(
            'the config has no test_dataloader / val_dataloader to take '
            'the parity images from'
        )
    if not cfg.get(f'{split}_dataloader'):
        split = 'val'
    loader = split_loader(cfg, split)
    batches, count = [], 0
    for data in loader:
        inputs = model.data_preprocessor(data, False)['inputs']
        inputs = inputs[: num_images - count]
        batches.append(inputs)
        count += len(inputs)
        if count >= num_images:
            break
    return batches


@torch.no_grad()
def onnx_parity(
    model: nn.Module,
    onnx_file: str,
    inputs: Iterable[torch.Tensor],
    atol: Optional[float] = None,
    feeds: Optional[dict] = None,
) -> dict:
    """Run ``onnx_file`` with ONNX Runtime (CPU) and the model in PyTorch
    on the same preprocessed batches and compare every output.

    The allowed difference follows from float32 rounding (see
    :mod:`mmst.deploy.rounding`): for each output,
    ``2 * gamma(L) * max|output|``, where ``L`` is the number of terms the
    network's summing ops accumulate (:func:`accumulation_length`, counted
    on one image) and ``max|output|`` the largest magnitude of that output
    in PyTorch over all the images. Both runtimes' results are within
    ``gamma(L)`` of the exact one relative to that magnitude, so within
    twice that of each other. A fixed absolute bound is wrong on both
    sides: 1e-4 refused a valid MobileNetV3 export whose logits differ by
    1.9e-4 on one CPU (bound here about 1e-2), and passes anything for
    outputs of magnitude 1e-5.

    Args:
        model (nn.Module): The plain model the file was exported from.
        onnx_file (str): The ONNX file.
        inputs (Iterable[Tensor]): Preprocessed (N, C, H, W) batches, e.g.
            :func:`eval_inputs`.
        atol (float, optional): A fixed largest absolute difference
            instead of the rounding bound. Defaults to None (the bound).
        feeds (dict, optional): The file's other inputs {name: numpy
            array}, fed with every batch (e.g. a family graph's
            ``member``).

    Returns:
        dict: ``max_abs_diff`` (largest difference over the outputs),
        ``atol`` (the smallest output's bound, or the fixed one),
        ``bounds`` (per output), ``max_abs_output`` (per output),
        ``accumulation_length``, ``images``, ``outputs``.

    Raises:
        ValueError: A difference above its bound, an output of another
            shape, or no inputs.
    """
    ort = _require_onnx()
    session = ort.InferenceSession(
        onnx_file, providers=['CPUExecutionProvider']
    )
    wrapper = TensorOutputs(unwrap_st(model)).eval()
    diffs, scales, images, length = [], [], 0, None
    for batch in inputs:
        if length is None:
            length = accumulation_length(wrapper, batch[:1])
        expected = wrapper(batch)
        feed = {'inputs': batch.detach().cpu().numpy(), **(feeds or {})}
        got = session.run(None, feed)
        if len(got) != len(expected):
            raise ValueError(
                f'{onnx_file} has {len(got)} outputs, PyTorch {len(expected)}'
            )
        if not diffs:
            diffs, scales = [0.0] * len(got), [0.0] * len(got)
        for i, (e, g) in enumerate(zip(expected, got)):
            g = torch.from_numpy(g)
            if tuple(g.shape) != tuple(e.shape):
                raise ValueError(
                    f'{onnx_file} output{i} has shape {tuple(g.shape)}, '
                    f'PyTorch {tuple(e.shape)}'
                )
            e = e.detach().cpu().double()
            diffs[i] = max(diffs[i], float((g.double() - e).abs().max()))
            scales[i] = max(scales[i], float(e.abs().max()))
        images += len(batch)
    if not images:
        raise ValueError('onnx_parity: no input images')
    if atol is None:
        bounds = [network_rounding_bound(length, s) for s in scales]
        how = (
            f'2 * gamma({length}) * max|output| (float32 rounding over '
            f'{length} accumulated terms)'
        )
    else:
        bounds = [float(atol)] * len(scales)
        how = 'the fixed atol'
    for i, (diff, bound) in enumerate(zip(diffs, bounds)):
        if diff > bound:
            raise ValueError(
                f'{onnx_file} output{i} differs from PyTorch by up to '
                f'{diff:.3g} on {images} images; allowed: {bound:.3g} = '
                f'{how}, max|output| {scales[i]:.3g}'
            )
    worst = max(diffs)
    print_log(
        f'ONNX parity: max |ONNX Runtime - PyTorch| = {worst:.3g} on '
        f'{images} images ({len(diffs)} outputs; allowed '
        f'{min(bounds):.3g})',
        'current',
        logging.INFO,
    )
    return dict(
        max_abs_diff=worst,
        atol=min(bounds),
        bounds=bounds,
        max_abs_output=scales,
        accumulation_length=length,
        images=images,
        outputs=len(diffs),
    )
