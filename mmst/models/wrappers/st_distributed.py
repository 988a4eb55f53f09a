"""Distributed data parallel for ST: the training step of the single-process
path, with gradients averaged across ranks once per optimizer step."""

import inspect
import logging
from typing import Dict, List, Union

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
from torch.nn.modules.batchnorm import SyncBatchNorm

from mmst.registry import MODEL_WRAPPERS

# Keys of MMEngine's DDP config that torch's DDP accepts too.
_DDP_KEYS = (
    'broadcast_buffers',
    'find_unused_parameters',
    'bucket_cap_mb',
    'gradient_as_bucket_view',
    'static_graph',
    'device_ids',
    'output_device',
)


def takes_sync_gradients(module: nn.Module) -> bool:
    """Whether ``module.train_step`` accepts ``sync_gradients`` (the ST
    step's hook for averaging gradients once per optimizer step)."""
    step = getattr(module, 'train_step', None)
    if step is None:
        return False
    try:
        return 'sync_gradients' in inspect.signature(step).parameters
    except (TypeError, ValueError):
        return False


def plain_ddp(module: nn.Module, **kwargs) -> MMDistributedDataParallel:
    """MMEngine's data-parallel wrapper for a model without the ST step,
    with the device ids MMEngine's Runner would give it (the module's GPU,
    or None on CPU, which torch's DDP requires there)."""
    cfg = {k: v for k, v in kwargs.items() if k in _DDP_KEYS}
    param = next(module.parameters(), None)
    on_gpu = param is not None and param.device.type == 'cuda'
    cfg['device_ids'] = [param.device.index] if on_gpu else None
    if not on_gpu:
        cfg.pop('output_device', None)
    print_log(
        f'{type(module).__name__} has no ST step: data-parallel training '
        'with MMDistributedDataParallel',
        'current',
        logging.INFO,
    )
    return MMDistributedDataParallel(module=module, **cfg)


@MODEL_WRAPPERS.register_module()
class STDistributedDataParallel(nn.Module):
    """Data parallel training of :class:`mmst.StimulativeTraining`.

    An ST iteration runs N + 1 forward / backward passes, and sub-network
    passes leave the skipped blocks' parameters unused. MMEngine's DDP
    ``train_step`` runs one ``forward(mode='loss')`` (the main network
    only); torch's DDP rejects passes that skip blocks unless
    ``find_unused_parameters=True``, and with it is exact only when every
    pass is a forward of the DDP module, reducing all gradients after each
    of the N + 1 backward passes. This wrapper does not hook into backward
    at all: every pass accumulates local gradients, then, once per optimizer
    step, all gradients (zeros where a rank has none) and a per-parameter
    "has a gradient" flag are flattened into one buffer and averaged with a
    single all-reduce. A parameter no rank touched keeps ``grad=None``.
    Every rank samples the same sub-network and input size (the seeded
    sampler), so the result equals single-process training on the global
    batch.

    Parameters and buffers are broadcast from rank 0 at construction;
    buffers (BN running statistics) are broadcast again before every step
    when ``broadcast_buffers`` is True, as DDP does.

    A module whose ``train_step`` takes no ``sync_gradients`` (a plain
    upstream model, e.g. the CT baseline of an ST config) is wrapped in
    MMEngine's ``MMDistributedDataParallel`` instead (the constructor
    returns that wrapper), so any config that sets this wrapper trains
    under any launcher whatever its model.

    Args:
        module (nn.Module): The ST model (or any BaseModel whose
            ``train_step`` takes ``sync_gradients``).
        broadcast_buffers (bool): Defaults to True.
        bucket_cap_mb (float): Largest all-reduce buffer; gradients larger
            than one bucket use several calls. Defaults to 1024.
        **kwargs: Accepted and ignored for drop-in compatibility with
            MMEngine's DDP config keys (``find_unused_parameters``,
            ``device_ids`` ...), which this wrapper does not need.
    """

    def __new__(cls, module: nn.Module, *args, **kwargs):
        # A model without the ST step (a CT baseline, a plain detector) in
        # a config that includes configs/_base_/st_runtime.py trains as
        # MMEngine would train it without mmst: MMDistributedDataParallel.
        if cls is STDistributedDataParallel and not takes_sync_gradients(
            module
        ):
            return plain_ddp(module, **kwargs)
        return super().__new__(cls)

    def __init__(
        self,
        module: nn.Module,
        broadcast_buffers: bool = True,
        bucket_cap_mb: float = 1024.0,
        **kwargs,
    ) -> None:
        super().__init__()
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError(
                'STDistributedDataParallel needs an '
                'initialised torch.distributed process group'
            )
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.bucket_cap_bytes = int(bucket_cap_mb * 2**20)
        self._check_sync_bn()
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor, 0)

    def _check_sync_bn(self) -> None:
        """Refuse SyncBatchNorm layers on CPU (torch's refuses CPU tensors
        in training). ``tools/train.py`` refuses such a config earlier,
        naming its keys (:func:`mmst.apis.checks.check_sync_bn`); this is
        the net for a model built by other code."""
        names = []
        for name, m in self.module.named_modules():
            if isinstance(m, SyncBatchNorm):
                p = next(m.parameters(), None)
                device = p.device if p is not None else m.running_mean.device
                if device.type == 'cpu':
                    names.append(name)
        if names:
            more = f' and {len(names) - 1} more' if len(names) > 1 else ''
            raise RuntimeError(
                f'SyncBatchNorm ({names[0]}{more}) runs only on GPUs: '
                "torch's SyncBatchNorm refuses CPU tensors. It comes from "
                "the config's norm_cfg=dict(type='SyncBN') (mmseg: "
                'backbone, decode_head and auxiliary_head; mmdet, mmpose, '
                "mmpretrain: backbones, necks, heads) or MMEngine's "
                "sync_bn='torch'. On CPU set those norm_cfg types to 'BN' "
                '(or GroupNorm / frozen BN) and remove sync_bn, or train '
                'in one process (--launcher none); tools/train.py names '
                'the keys of the config (mmst.apis.check_config).'
            )

    # -- gradient synchronisation ----------------------------------------
    def _trainable(self) -> List[nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    @torch.no_grad()
    def sync_gradients(self) -> None:
        """Average all gradients across ranks (one all-reduce per bucket)."""
        world = dist.get_world_size()
        # Buckets hold one dtype and device each (a flat buffer is cast to
        # its first parameter's dtype).
        groups: Dict[tuple, List[nn.Parameter]] = {}
        for p in self._trainable():
            groups.setdefault((p.dtype, p.device), []).append(p)
        for params in groups.values():
            bucket: List[nn.Parameter] = []
            size = 0
            for p in params:
                nbytes = p.numel() * p.element_size()
                if bucket and size + nbytes > self.bucket_cap_bytes:
                    self._sync_bucket(bucket, world)
                    bucket, size = [], 0
                bucket.append(p)
                size += nbytes
            self._sync_bucket(bucket, world)

    def _sync_bucket(self, params: List[nn.Parameter], world: int) -> None:
        dtype = params[0].dtype
        device = params[0].device
        flat = torch.cat(
            [
                (p.grad if p.grad is not None else torch.zeros_like(p))
                .reshape(-1)
                .to(dtype)
                for p in params
            ]
            + [
                torch.tensor(
                    [float(p.grad is not None) for p in params],
                    dtype=dtype,
                    device=device,
                )
            ]
        )
        dist.all_reduce(flat)
        flags = flat[-len(params) :]
        offset = 0
        for p, flag in zip(params, flags.tolist()):
            n = p.numel()
            if flag > 0:
                grad = flat[offset : offset + n].view_as(p).div_(world)
                if p.grad is None:
                    p.grad = grad.to(p.dtype).clone()
                else:
                    p.grad.copy_(grad)
            offset += n

    @torch.no_grad()
    def _broadcast_buffers(self) -> None:
        for buf in self.module.buffers():
            dist.broadcast(buf, 0)

    # -- the steps: the module's own -------------------------------------
    def train_step(
        self, data: Union[dict, tuple, list], optim_wrapper: OptimWrapper
    ) -> Dict[str, torch.Tensor]:
        if self.broadcast_buffers:
            self._broadcast_buffers()
        return self.module.train_step(
            data, optim_wrapper, sync_gradients=self.sync_gradients
        )

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        return self.module.val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        return self.module.test_step(data)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
