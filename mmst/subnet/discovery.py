"""Finding and checking the residual stages of any backbone.

Candidates are found from the module tree: every ``nn.Sequential`` /
``nn.ModuleList`` of at least two blocks whose blocks after the first share
one class (the first block of a stage may differ: it often changes the
shape). They are then checked with one dry forward on a small input (no
gradients, weights untouched):

- a block runs exactly once per forward, and takes the previous block's
  output (ConvNeXt's ``stages`` list, with downsampling layers between its
  entries, is not a stage; each entry is);
- a block after the first may be skipped only if it keeps its input's shape
  (a shape-changing block starts a new stage: it is always kept);
- a skippable block must be residual: with all of its parameters set to
  zero (on a copy) it returns its input, i.e. skipping it drops one branch
  ``x + f(x)`` and nothing else. A block that fails is refused, named,
  unless declared on purpose (``allow_non_residual``).

The first block may be of another class only when it changes the shape
(a transition): Vig's (Grapher, FFN) pairs are not stages, the sequence of
pairs is. A stage whose blocks hold another stage is dropped (the inner
one is the finer choice, e.g. MixMIM's blocks rather than its layers).
Stages are ordered as the forward runs them. The same checks verify a
user's ``elastic_stages`` declaration (:func:`check_stages`).
"""

import copy
import weakref
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from mmst.settings import SettingError

#: Dry-forward input sizes tried in turn (square images).
DRY_SIZES = (64, 224, 256)


#: Blocks whose output mirrors their positional inputs (e.g. MViT's
#: ``(x, hw_shape) -> (x, hw_shape)``): skipped, they return all of them.
RETURNS_INPUTS: 'weakref.WeakSet[nn.Module]' = weakref.WeakSet()


def _first_input(x, *args, **kwargs):
    return x


def _all_inputs(*args, **kwargs):
    return args


def skip_forward(block: nn.Module) -> Callable:
    """What a skipped ``block`` computes: its first input, or all of its
    positional inputs for blocks whose output mirrors them."""
    return _all_inputs if block in RETURNS_INPUTS else _first_input


def _mirrors_inputs(args: tuple, output) -> bool:
    """Whether ``output`` is a tuple with one entry per positional input,
    each of the input's shape (tensors) or equal to it (the rest)."""
    if not isinstance(output, (tuple, list)) or len(output) != len(args):
        return False
    for a, o in zip(args, output):
        if isinstance(a, torch.Tensor) != isinstance(o, torch.Tensor):
            return False
        if isinstance(a, torch.Tensor):
            if a.shape != o.shape:
                return False
        elif isinstance(a, (tuple, list)):
            if not isinstance(o, (tuple, list)) or tuple(a) != tuple(o):
                return False
        elif a != o:
            return False
    return True


def _output_kind(args: tuple, output) -> Optional[str]:
    """``'first'`` (a tensor, for the first input), ``'inputs'`` (mirrors
    the inputs) or None (a block that cannot be skipped)."""
    if isinstance(output, torch.Tensor):
        return 'first'
    if _mirrors_inputs(args, output):
        return 'inputs'
    return None


class StageCheckError(ValueError):
    """A declared or discovered stage fails a check (the message names the
    block, what failed and what is allowed)."""


def _first_tensor(value) -> Optional[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value:
        return _first_tensor(value[0])
    return None


def input_channels(backbone: nn.Module) -> int:
    """Input channels of ``backbone``: the first convolution's (a patch
    embedding's too), else an ``in_channels`` attribute, else 3."""
    for m in backbone.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            return m.in_channels
    value = getattr(backbone, 'in_channels', None)
    return value if isinstance(value, int) else 3


def repeated_containers(backbone: nn.Module) -> List[Tuple[str, list]]:
    """``(path, blocks)`` of every container of at least two blocks (with
    parameters) whose blocks after the first share one class."""
    found = []
    for path, module in backbone.named_modules():
        if not isinstance(module, (nn.Sequential, nn.ModuleList)):
            continue
        blocks = list(module.children())
        if len(blocks) < 2:
            continue
        if len({type(b) for b in blocks[1:]}) != 1:
            continue
        if all(not any(True for _ in b.parameters()) for b in blocks):
            continue  # parameter-free (activations, pooling)
        found.append((path, blocks))
    return found


class _Trace:
    """Inputs, outputs and call order of blocks in one dry forward."""

    def __init__(self, blocks: List[nn.Module]) -> None:
        self.calls: Dict[nn.Module, int] = {}
        self.inputs: Dict[nn.Module, tuple] = {}
        self.outputs: Dict[nn.Module, object] = {}
        self.order: Dict[nn.Module, int] = {}
        self.handles = []
        for b in blocks:
            self.handles.append(
                b.register_forward_hook(self._hook, with_kwargs=True)
            )

    def _hook(self, module, args, kwargs, output) -> None:
        self.calls[module] = self.calls.get(module, 0) + 1
        self.order.setdefault(module, len(self.order))
        self.inputs[module] = (args, kwargs)
        self.outputs[module] = output

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def dry_shapes(backbone: nn.Module) -> List[Tuple[int, int, int]]:
    """The input shapes ``(C, H, W)`` a dry forward tries, in turn: the
    :data:`DRY_SIZES`, then the backbone's own ``img_size`` if it is
    another (e.g. Swin V2's 256)."""
    sizes = list(DRY_SIZES)
    img_size = getattr(backbone, 'img_size', None)
    if isinstance(img_size, (tuple, list)) and img_size:
        img_size = img_size[0]
    if isinstance(img_size, int) and img_size not in sizes:
        sizes.append(img_size)
    return [(input_channels(backbone), s, s) for s in sizes]


def forward_error(
    backbone: nn.Module, shape: Sequence[int]
) -> Optional[Exception]:
    """What a forward of ``backbone`` (eval mode, no gradients) on one
    random image of ``shape`` ``(C, H, W)`` raises, None if it runs."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(0)
            backbone(torch.randn((1, *shape), generator=gen))
        return None
    except Exception as e:  # noqa: BLE001 (reported to the caller)
        return e
    finally:
        backbone.train(was_training)


def smaller_input_failure(
    backbone: nn.Module, sampler
) -> Optional[Tuple[int, int, Exception]]:
    """Whether ``backbone`` runs on the smallest input a sub-network gets
    from ``sampler`` (an :class:`~mmst.subnet.InputSizeSampler`): for each
    of :func:`dry_shapes` the backbone runs on, dry forwards at the
    sampler's smallest size for it and the next; one size that runs both
    is enough (ConvNeXt runs
    on 224 and 96 pixels, not on 64 and 27: its stem and three 2x
    downsamplings leave nothing of 27). Backbones with tables tied to one
    input size (BEiT's relative position bias, LeViT's attention biases)
    refuse smaller inputs at every size. The sizes a run really uses come
    from its data pipeline, which the model does not see: a failure there
    names ``input_resize`` too (:class:`StimulativeTraining`).

    Returns:
        None if it runs (or no size runs at all: the stage checks report
        that), else ``(size, smaller size, error)`` in pixels for the
        first size that runs.
    """
    failure = None
    for shape in dry_shapes(backbone):
        if forward_error(backbone, shape) is not None:
            continue
        size = min(shape[1:])
        small = sampler.smallest(size)
        if small >= size:
            return None
        # the smallest and the next size: a backbone that needs sizes
        # divisible by some stride (HRNet's fusion of branches) fails on
        # one of them, though the sampler draws every integer
        errors = [
            (s, forward_error(backbone, (shape[0], s, s)))
            for s in sorted({small, min(small + 1, size)})
        ]
        errors = [(s, e) for s, e in errors if e is not None]
        if not errors:
            return None
        failure = failure or (size, *errors[0])
    return failure


_SMALLER_ALLOWED = (
    'allowed: input_resize=None (sub-networks at the main input size), a '
    'range the backbone accepts, or a backbone setting for smaller inputs '
    '(Swin: pad_small_map=True); see the "smaller inputs" column of '
    'docs/backbones.md'
)


def check_smaller_inputs(
    backbone: nn.Module,
    sampler,
    value,
    fixed: Optional[Tuple[Sequence[int], Sequence[int]]] = None,
) -> None:
    """Build-time form of :func:`smaller_input_failure`; ``value`` is the
    config's ``input_resize``, for the message. ``fixed``: for a model
    whose inputs have one size (top-down pose crops), ``(shape, smallest)``
    of its batches ``(C, H, W)`` and of the smallest padded batch a
    sub-network gets from them, checked too (a backbone may run on square
    inputs of that shorter side and not on the real aspect ratio).

    Raises:
        ValueError: The smaller input fails (names ``input_resize``, both
            sizes, the backbone's error and what is allowed).
    """
    failure = smaller_input_failure(backbone, sampler)
    if failure is None and fixed is not None:
        shape, smallest = fixed
        error = forward_error(backbone, smallest)
        if error is not None:
            (h, w), (sh, sw) = shape[-2:], smallest[-2:]
            raise SettingError(
                'input_resize',
                f"={value!r}: the model's inputs are {h}x{w} (h x w); "
                f'{type(backbone).__name__} does not run on {sh}x{sw}, the '
                'smallest (padded) input a sub-network gets from them '
                f'({type(error).__name__}: {str(error)[:200]}); '
                + _SMALLER_ALLOWED,
            )
    if failure is None:
        return
    size, small, error = failure
    raise SettingError(
        'input_resize',
        f'={value!r}: {type(backbone).__name__} runs on '
        f'{size}x{size} inputs but not on {small}x{small}, the smallest a '
        f'sub-network gets from them ({type(error).__name__}: '
        f'{str(error)[:200]}); ' + _SMALLER_ALLOWED,
    )


def dry_forward(
    backbone: nn.Module,
    blocks: List[nn.Module],
    input_shape: Optional[Sequence[int]] = None,
) -> _Trace:
    """Run ``backbone`` once in eval mode on a random batch of 1 (shape
    ``input_shape`` (C, H, W), or ``DRY_SIZES`` tried in turn) and trace
    ``blocks``.

    Raises:
        StageCheckError: No input size runs (names the sizes and the last
            error).
    """
    shapes = dry_shapes(backbone)
    if input_shape is not None:
        shapes = [tuple(input_shape)]
    was_training = backbone.training
    backbone.eval()
    error = None
    try:
        for shape in shapes:
            trace = _Trace(blocks)
            try:
                with torch.no_grad():
                    gen = torch.Generator().manual_seed(0)
                    backbone(torch.randn((1, *shape), generator=gen))
                return trace
            except Exception as e:  # noqa: BLE001 (a size the net refuses)
                error = e
            finally:
                trace.remove()
    finally:
        backbone.train(was_training)
    raise StageCheckError(
        f'a dry forward of {type(backbone).__name__} failed for every input '
        f'shape tried {shapes}: {type(error).__name__}: {error}; mmst '
        'checks stages with a forward on one batch of images (B, C, H, W), '
        'which this backbone does not take'
    )


def _same(x: Optional[torch.Tensor], output) -> bool:
    """Whether ``x`` is the block output ``output`` (the same tensor, or
    equal values)."""
    y = _first_tensor(output)
    if x is None or y is None:
        return False
    return x is y or (x.shape == y.shape and torch.equal(x, y))


def _same_shape(x: Optional[torch.Tensor], output) -> bool:
    y = _first_tensor(output)
    return x is not None and y is not None and x.shape == y.shape


def is_residual(block: nn.Module, args: tuple, kwargs: dict) -> bool:
    """Whether ``block`` returns its input when all of its parameters are
    zero (on a copy): skipping it then drops one residual branch."""
    x = _first_tensor(args)
    if x is None:
        return False
    zeroed = copy.deepcopy(block).eval()
    with torch.no_grad():
        for p in zeroed.parameters():
            p.zero_()
        out = _first_tensor(zeroed(*args, **kwargs))
    if out is None or out.shape != x.shape:
        return False
    scale = float(x.abs().max()) or 1.0
    return bool(torch.allclose(out, x, rtol=1e-4, atol=1e-5 * scale))


def _names(backbone: nn.Module) -> Dict[nn.Module, str]:
    return {m: n for n, m in backbone.named_modules()}


def check_stages(
    backbone: nn.Module,
    stages: List[List[nn.Module]],
    input_shape: Optional[Sequence[int]] = None,
    allow_non_residual: bool = False,
    trace: Optional[_Trace] = None,
) -> None:
    """Check that every block after the first of each stage can be skipped
    (see the module docstring).

    Raises:
        StageCheckError: Names the first failing block (its path in the
            backbone), what failed and what is allowed.
    """
    names = _names(backbone)
    blocks = [b for s in stages for b in s]
    if trace is None:
        trace = dry_forward(backbone, blocks, input_shape)
    for stage in stages:
        for j, block in enumerate(stage):
            name = names.get(block, type(block).__name__)
            calls = trace.calls.get(block, 0)
            if calls == 0:
                raise StageCheckError(
                    f'elastic_stages: block {name!r} does not run in '
                    f"{type(backbone).__name__}'s forward; allowed: blocks "
                    'the forward runs once'
                )
            if calls > 1:
                raise StageCheckError(
                    f'elastic_stages: block {name!r} runs {calls} times in '
                    'one forward (shared weights); allowed: blocks that run '
                    'once'
                )
            if j == 0:
                continue
            args, kwargs = trace.inputs[block]
            x = _first_tensor(args)
            y = _first_tensor(trace.outputs[block])
            if x is None or y is None or x.shape != y.shape:
                raise StageCheckError(
                    f'elastic_stages: block {name!r} (block {j} of its '
                    f'stage) changes the shape '
                    f'{None if x is None else tuple(x.shape)} -> '
                    f'{None if y is None else tuple(y.shape)}, so it cannot '
                    'be skipped; allowed: only the first block of a stage '
                    'changes the shape (start a new stage there)'
                )
            kind = _output_kind(args, trace.outputs[block])
            if kind is None:
                raise StageCheckError(
                    f'elastic_stages: block {name!r} returns '
                    f'{type(trace.outputs[block]).__name__}, neither a '
                    'tensor nor its inputs, so a skipped block cannot stand '
                    'in for it; allowed: blocks returning a tensor, or a '
                    'tuple like their positional inputs'
                )
            if kind == 'inputs':
                RETURNS_INPUTS.add(block)
            if not allow_non_residual and not is_residual(block, args, kwargs):
                raise StageCheckError(
                    f'elastic_stages: block {name!r} ({type(block).__name__}'
                    ') is not residual: with its parameters at zero it does '
                    'not return its input, so skipping it changes more than '
                    'one branch; allowed: residual blocks (x + f(x)), or '
                    'declare the stage with allow_non_residual=True on '
                    'purpose'
                )


def discover_stages(
    backbone: nn.Module,
    input_shape: Optional[Sequence[int]] = None,
    rejected: Optional[List[Tuple[str, str]]] = None,
) -> List[Tuple[str, List[nn.Module]]]:
    """The checked residual stages of ``backbone`` as ``(container path,
    blocks)``, in execution order; containers with a shape-changing block
    after the first are split there (the new stage keeps that block);
    candidates with a non-residual block are left out, as are stages of one
    block. ``rejected``, when given, receives ``(container path, reason)``
    for every candidate left out.

    Raises:
        StageCheckError: The dry forward fails for every input shape.
    """
    rejected = [] if rejected is None else rejected
    candidates = repeated_containers(backbone)
    blocks = [b for _, bs in candidates for b in bs]
    if not blocks:
        return []
    trace = dry_forward(backbone, blocks, input_shape)
    stages: List[Tuple[str, List[nn.Module]]] = []
    for path, bs in candidates:
        calls = {trace.calls.get(b, 0) for b in bs}
        if calls != {1}:
            rejected.append(
                (
                    path,
                    'its blocks do not run'
                    if calls == {0}
                    else 'its blocks do not run exactly once per forward',
                )
            )
            continue
        chained = all(
            _same(_first_tensor(trace.inputs[b][0]), trace.outputs[a])
            for a, b in zip(bs, bs[1:])
        )
        if not chained:
            rejected.append(
                (
                    path,
                    'its blocks are not chained (a block does not take '
                    "the previous block's output)",
                )
            )
            continue
        first_in = _first_tensor(trace.inputs[bs[0]][0])
        if type(bs[0]) is not type(bs[1]) and _same_shape(
            first_in, trace.outputs[bs[0]]
        ):
            rejected.append(
                (
                    path,
                    f'its first block ({type(bs[0]).__name__}) differs '
                    f'from the others ({type(bs[1]).__name__}) without '
                    'changing the shape: a pair of different layers, not a '
                    'stage',
                )
            )
            continue
        current: List[nn.Module] = []
        parts: List[List[nn.Module]] = []
        for block in bs:
            args, _ = trace.inputs[block]
            x = _first_tensor(args)
            y = _first_tensor(trace.outputs[block])
            keeps = x is not None and y is not None and x.shape == y.shape
            if current and not keeps:
                parts.append(current)
                current = []
            current.append(block)
        parts.append(current)
        kinds = {
            block: _output_kind(trace.inputs[block][0], trace.outputs[block])
            for part in parts
            for block in part[1:]
        }
        odd = [b for b, kind in kinds.items() if kind is None]
        failing = [
            block
            for part in parts
            for block in part[1:]
            if not is_residual(block, *trace.inputs[block])
        ]
        if odd:
            rejected.append(
                (
                    path,
                    f'its {type(odd[0]).__name__} blocks return neither a '
                    'tensor nor their inputs',
                )
            )
        elif failing:
            rejected.append(
                (
                    path,
                    f'its {type(failing[0]).__name__} blocks are not residual',
                )
            )
        elif all(len(part) < 2 for part in parts):
            rejected.append(
                (
                    path,
                    'every block changes the shape'
                    if len(parts) > 1
                    else 'one block',
                )
            )
        else:
            stages.extend((path, part) for part in parts if len(part) > 1)
            RETURNS_INPUTS.update(
                b for b, kind in kinds.items() if kind == 'inputs'
            )
    # innermost: a stage whose blocks hold another stage is dropped
    paths = {path for path, _ in stages}
    stages = [
        (path, part)
        for path, part in stages
        if not any(
            other.startswith(f'{path}.') or (not path and other)
            for other in paths
            if other != path
        )
    ]
    stages.sort(key=lambda s: trace.order[s[1][0]])
    return stages
