"""ONNX export of a depth family (:class:`mmst.apis.DepthFamily`;
``docs/family.md``, "ONNX"), two ways:

- **per-member files**: one ``.onnx`` file per member, the
  :func:`mmst.deploy.export_onnx` of the family's model switched to that
  member (its blocks only, its BN statistics);
- **one graph** with a second input ``member`` (int64 scalar, the member's
  index; the names in the file's metadata, :data:`MEMBERS_KEY`), in one of
  two layouts (:data:`LAYOUTS`): ``'branches'``, a binary tree of ONNX
  ``If`` nodes over the members' own graphs, the shared weights stored once
  (:func:`merge_member_graphs`); or ``'gather'``, one network whose BN
  layers gather the member's statistics by the index and whose blocks that
  some member skips sit in ``If`` nodes (:func:`family_graph`).

Skipped blocks are never computed. :func:`family_onnx_parity` checks every
member against PyTorch (the family switched to it) within the float32
rounding bound of :mod:`mmst.deploy.rounding`; :func:`family_onnx_latency`
times them with ONNX Runtime (``benchmarks/family_switch.py --onnx``).
"""

import copy
import hashlib
import json
import os
import os.path as osp
import tempfile
import warnings
from typing import Dict, Iterable, List, Optional, Sequence

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmst.analysis.cost import TensorOutputs

from .export import check_outputs
from .onnx import _require_onnx, check_onnx_task, export_onnx, onnx_parity

#: The one graph's file name in the output folder.
ONE_GRAPH_NAME = 'family.onnx'
#: The one graph's input that selects the member (int64, a scalar).
MEMBER_INPUT = 'member'
#: Layouts of the one graph (:func:`export_family_onnx`).
LAYOUTS = ('branches', 'gather')
#: Metadata key of the one graph: the members' names (JSON list) in the
#: order of the ``member`` index.
MEMBERS_KEY = 'mmst_family_members'


def member_file_name(name: str) -> str:
    """The per-member file of member ``name``: ``'[1,2,1]'`` ->
    ``'member_1-2-1.onnx'``."""
    return 'member_' + name.strip('[]').replace(',', '-') + '.onnx'


class _Index:
    """The member index the gathered BN layers and the gates read (the
    graph's ``member`` input while it is traced)."""

    value: Optional[torch.Tensor] = None


class _GatheredBN(nn.Module):
    """Eval-mode BN whose statistics are the member's: per member a
    scale ``w / sqrt(var + eps)`` and a shift ``b - mean * scale`` (folded in
    float64), gathered by the member index."""

    def __init__(
        self, bn: _BatchNorm, stats: Sequence[tuple], index: _Index
    ) -> None:
        super().__init__()
        weight = bn.weight if bn.affine else None
        bias = bn.bias if bn.affine else None
        scales, shifts = [], []
        for mean, var in stats:
            scale = (var.double() + bn.eps).rsqrt()
            if weight is not None:
                scale = scale * weight.detach().double()
            shift = -mean.double() * scale
            if bias is not None:
                shift = shift + bias.detach().double()
            scales.append(scale.float())
            shifts.append(shift.float())
        self.register_buffer('scales', torch.stack(scales))
        self.register_buffer('shifts', torch.stack(shifts))
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = self.index.value.reshape(1)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = self.scales.index_select(0, i).reshape(shape)
        shift = self.shifts.index_select(0, i).reshape(shape)
        return x * scale + shift


class _Body(nn.Module):
    """A block with the member index as an explicit input (traced on its
    own, so that the ``If`` around it can pass the index in)."""

    def __init__(self, block: nn.Module, index: _Index) -> None:
        super().__init__()
        self.block, self.index = block, index

    def forward(self, x: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
        self.index.value = i
        return self.block(x)


class _Cond(nn.Module):
    """``body(x, i)`` if ``keep`` else ``x`` (scripted: an ONNX ``If``)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(
        self, x: torch.Tensor, keep: torch.Tensor, i: torch.Tensor
    ) -> torch.Tensor:
        if bool(keep):
            return self.body(x, i)
        return x


class _Gate(nn.Module):
    """A block that the member runs or skips: ``keep[member]``."""

    def __init__(self, cond, keep: torch.Tensor, index: _Index) -> None:
        super().__init__()
        self.cond, self.index = cond, index
        self.register_buffer('keep', keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = self.index.value.reshape(1)
        keep = self.keep.index_select(0, i) > 0
        return self.cond(x, keep, i)


class _FamilyGraph(nn.Module):
    """``(inputs, member) -> the member's mode='tensor' outputs``."""

    def __init__(self, model: nn.Module, index: _Index) -> None:
        super().__init__()
        self.outputs, self.index = TensorOutputs(model), index

    def forward(self, inputs: torch.Tensor, member: torch.Tensor):
        self.index.value = member
        return self.outputs(inputs)


def _set_module(root: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, last = name.rpartition('.')
    setattr(root.get_submodule(parent) if parent else root, last, module)


def _block_inputs(model: nn.Module, blocks: List[nn.Module], shape) -> list:
    """Each block's input in one forward of the full network on zeros."""
    found: Dict[nn.Module, torch.Tensor] = {}

    def hook(module, args):
        if len(args) != 1 or not isinstance(args[0], torch.Tensor):
            raise ValueError(
                f'one-graph ONNX export: block {type(module).__name__} takes '
                f'{len(args)} positional inputs; allowed: blocks with one '
                'tensor input (export per-member files instead)'
            )
        found.setdefault(module, args[0].detach())

    handles = [b.register_forward_pre_hook(hook) for b in blocks]
    param = next(model.parameters())
    try:
        with torch.no_grad():
            TensorOutputs(model)(torch.zeros((1, *shape), device=param.device))
    finally:
        for h in handles:
            h.remove()
    return [found[b] for b in blocks]


def family_graph(family, members: Sequence[str], input_shape) -> nn.Module:
    """The module :func:`export_family_onnx` traces into the one graph: a
    copy of ``family.model`` whose BN layers gather the ``members``'
    statistics by the ``member`` input and whose blocks that some of
    ``members`` skip run inside an ``If`` (scripted).

    Args:
        family (DepthFamily): The family (its active member is restored).
        members (Sequence[str]): Member names, in index order.
        input_shape (Sequence[int]): (C, H, W) of one preprocessed image.

    Returns:
        nn.Module: ``forward(inputs (N, C, H, W) float, member () int64)``
        -> the member's ``mode='tensor'`` outputs (a tuple of tensors).

    Raises:
        ValueError: A block to gate does not take one tensor.
    """
    active = family.member
    stats: Dict[str, List[tuple]] = {}
    try:
        for name in members:
            family.set_member(name)
            for n, m in family.model.named_modules():
                if isinstance(m, _BatchNorm) and m.track_running_stats:
                    stats.setdefault(n, []).append(
                        (m.running_mean.clone(), m.running_var.clone())
                    )
        family.set_member(None)
        model = copy.deepcopy(family.model).eval()
        device = next(model.parameters()).device
    finally:
        family.set_member(active)
    index = _Index()
    for n, s in stats.items():
        bn = model.get_submodule(n)
        if all(
            torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
            for a, b in zip(s, s[1:])
        ):
            # one set for all (e.g. the stem's): a plain BN, folded by ORT
            bn.running_mean, bn.running_var = s[0]
        else:
            _set_module(model, n, _GatheredBN(bn, s, index))
    # the copy's blocks, by the position of the original's in the stages
    names = {m: n for n, m in family.model.named_modules()}
    depths = [family.row(name)['subnet'] for name in members]
    gated, keeps = [], []
    for s, stage in enumerate(family.elastic.stages):
        for b, block in enumerate(stage):
            keep = [b < d[s] for d in depths]
            if all(keep):
                continue
            gated.append(names[block])
            keeps.append(torch.tensor(keep, dtype=torch.int64, device=device))
    blocks = [model.get_submodule(n) for n in gated]
    first = torch.zeros((), dtype=torch.int64, device=device)
    index.value = first
    inputs = _block_inputs(model, blocks, input_shape)
    for name, block, x, keep in zip(gated, blocks, inputs, keeps):
        if not keep.any():  # no member runs it: an identity
            _set_module(model, name, nn.Identity())
            continue
        body = _Body(block, index)
        with torch.no_grad(), warnings.catch_warnings():
            # TorchScript is what the ONNX exporter reads If nodes from
            warnings.filterwarnings('ignore', '.*is deprecated', FutureWarning)
            traced = torch.jit.trace(body, (x, first.reshape(1)))
            cond = torch.jit.script(_Cond(traced))
        _set_module(model, name, _Gate(cond, keep, index))
    return _FamilyGraph(model, index).eval()


def _share(tensor, shared: dict, initializers: list) -> str:
    """The name of the initializer with ``tensor``'s type, shape and
    values (added on first sight, under the tensor's own name unless
    another content holds it)."""
    from onnx import numpy_helper

    digest = hashlib.sha256(numpy_helper.to_array(tensor).tobytes())
    key = (tensor.data_type, tuple(tensor.dims), digest.hexdigest())
    if key not in shared:
        taken = {t.name for t in initializers}
        name, n = tensor.name, 1
        while name in taken:
            name, n = f'{tensor.name}.{n}', n + 1
        kept = type(tensor)()
        kept.CopyFrom(tensor)
        kept.name = name
        initializers.append(kept)
        shared[key] = name
    return shared[key]


def _branch(model, i: int, shared: dict, initializers: list):
    """Member ``i``'s graph as an ``If`` branch: no inputs (``inputs`` and
    the initializers, shared in the outer graph, are read from there), its
    values renamed ``m{i}/...``."""
    from onnx import helper

    graph = model.graph
    names = {
        t.name: _share(t, shared, initializers) for t in graph.initializer
    }
    for node in graph.node:
        for out in node.output:
            if out:
                names[out] = f'm{i}/{out}'
    nodes = []
    for node in graph.node:
        new = type(node)()
        new.CopyFrom(node)
        new.name = f'm{i}/{node.name}'
        new.input[:] = [names.get(v, v) for v in node.input]
        new.output[:] = [names.get(v, v) for v in node.output]
        nodes.append(new)
    outputs = []
    for out in graph.output:
        info = type(out)()
        info.CopyFrom(out)
        info.name = names[out.name]
        outputs.append(info)
    return helper.make_graph(nodes, f'member{i}', [], outputs)


def _tree(branches: list, lo: int, hi: int, outputs: list):
    """The graph that runs branch ``index`` for ``lo <= index < hi``: a
    binary tree of ``If (index < mid)`` nodes over the branches."""
    from onnx import TensorProto, helper

    if hi - lo == 1:
        return branches[lo]
    mid = (lo + hi) // 2
    tag = f'{lo}_{hi}'
    names = [f'tree{tag}/{o.name}' for o in outputs]
    nodes = [
        helper.make_node(
            'Constant',
            [],
            [f'tree{tag}/mid'],
            value=helper.make_tensor(
                f'mid{tag}', TensorProto.INT64, [], [mid]
            ),
        ),
        helper.make_node(
            'Less', ['member_index', f'tree{tag}/mid'], [f'tree{tag}/cond']
        ),
        helper.make_node(
            'If',
            [f'tree{tag}/cond'],
            names,
            name=f'tree{tag}/if',
            then_branch=_tree(branches, lo, mid, outputs),
            else_branch=_tree(branches, mid, hi, outputs),
        ),
    ]
    infos = []
    for name, out in zip(names, outputs):
        info = type(out)()
        info.CopyFrom(out)
        info.name = name
        infos.append(info)
    return helper.make_graph(nodes, f'tree{tag}', [], infos)


def merge_member_graphs(files: Sequence[str]):
    """One ONNX model of the member files ``files`` (each with one input
    ``inputs`` and the same outputs, e.g. :func:`mmst.deploy.export_onnx`
    with ``fold_bn=False``): a second input ``member`` (int64 scalar)
    selects, through a binary tree of ``If`` nodes, the graph of
    ``files[member]``, which alone runs. Initializers with equal type,
    shape and values (the weights the members share) are stored once.
    ``member`` is first gathered from ``0 .. len(files) - 1``, so an index
    outside ``-len(files) .. len(files) - 1`` is an ONNX Runtime error
    (negative ones count from the end, as in Python).

    Returns:
        onnx.ModelProto: The model (opset and IR version of the first
        file).

    Raises:
        ValueError: No files, or files whose inputs or outputs differ in
            names.
    """
    import onnx
    from onnx import TensorProto, helper

    if not files:
        raise ValueError('merge_member_graphs: no member files')
    models = [onnx.load(f) for f in files]
    first = models[0].graph
    for f, m in zip(files, models):
        ins = [i.name for i in m.graph.input]
        outs = [o.name for o in m.graph.output]
        if ins != ['inputs'] or outs != [o.name for o in first.output]:
            raise ValueError(
                f'{f} has inputs {ins} and outputs {outs}; allowed: inputs '
                f"['inputs'] and the outputs of {files[0]}"
            )
    shared: dict = {}
    initializers: list = []
    branches = [
        _branch(m, i, shared, initializers) for i, m in enumerate(models)
    ]
    outputs = list(first.output)
    root = _tree(branches, 0, len(branches), outputs)
    count = len(files)
    nodes = [
        helper.make_node(
            'Constant',
            [],
            ['member_range'],
            value=helper.make_tensor(
                'range', TensorProto.INT64, [count], list(range(count))
            ),
        ),
        helper.make_node(
            'Gather', ['member_range', MEMBER_INPUT], ['member_index']
        ),
        *root.node,
        *[
            helper.make_node('Identity', [got.name], [out.name])
            for got, out in zip(root.output, outputs)
        ],
    ]
    member = helper.make_tensor_value_info(MEMBER_INPUT, TensorProto.INT64, [])
    graph = helper.make_graph(
        nodes,
        'depth_family',
        [first.input[0], member],
        outputs,
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=models[0].opset_import,
        ir_version=models[0].ir_version,
        producer_name='mmst',
    )
    onnx.checker.check_model(model)
    return model


def _save_with_members(model, path: str, members: Sequence[str]) -> None:
    import onnx

    entry = model.metadata_props.add()
    entry.key, entry.value = MEMBERS_KEY, json.dumps(list(members))
    onnx.save(model, path)


def _export_gathered(family, names, input_shape, path, opset_version):
    """The ``'gather'`` one graph (:func:`family_graph`), traced."""
    import onnx

    graph = family_graph(family, names, input_shape)
    param = next(graph.parameters())
    dummy = torch.zeros((1, *input_shape), device=param.device)
    member = torch.zeros((), dtype=torch.int64, device=param.device)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings('ignore', '.*is deprecated', FutureWarning)
        n_out = len(graph(dummy, member))
        traced = torch.jit.trace(graph, (dummy, member))
    outputs = [f'output{i}' for i in range(n_out)]
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', 'no signature found')
        torch.onnx.export(
            traced,
            (dummy, member),
            path,
            input_names=['inputs', MEMBER_INPUT],
            output_names=outputs,
            dynamic_axes={n: {0: 'batch'} for n in ['inputs', *outputs]},
            opset_version=opset_version,
            dynamo=False,
        )
    _save_with_members(onnx.load(path), path, names)


def export_family_onnx(
    family,
    out_dir: str,
    members: Optional[Sequence] = None,
    per_member: bool = True,
    one_graph: bool = True,
    layout: str = 'branches',
    input_shape: Optional[Sequence[int]] = None,
    opset_version: int = 17,
    force: bool = False,
) -> dict:
    """Export the members of ``family`` to ONNX in ``out_dir``: one file
    per member (:func:`member_file_name`) and / or one graph with the
    member as an input (:data:`ONE_GRAPH_NAME`).

    Every file takes ``inputs`` (N, C, H, W float: the data
    preprocessor's output; dynamic batch) and gives the ``mode='tensor'``
    outputs ``output0`` ... (as :func:`mmst.deploy.export_onnx`); the one
    graph also takes ``member`` (int64 scalar: the index into the
    returned ``members``, whose names the file's metadata holds under
    :data:`MEMBERS_KEY`). Its ``layout``:

    - ``'branches'`` (default): a binary tree of ``If`` nodes picks the
      member's own graph (:func:`merge_member_graphs`); the weights are
      stored once, each branch holds its member's BN statistics, which ONNX
      Runtime folds into the convolutions when it loads the file;
    - ``'gather'``: one network whose BN layers gather their member's
      statistics (folded to a scale and a shift) by the index and whose
      blocks that some member skips sit in ``If`` nodes
      (:func:`family_graph`).

    In both, the blocks the member skips are not computed. The per-member
    files keep BN layers unfolded too (``fold_bn=False``); ONNX Runtime
    folds them at load.

    Args:
        family (DepthFamily): The family (:func:`mmst.apis.init_family`);
            its active member is restored afterwards.
        out_dir (str): Output folder.
        members (Sequence, optional): Member specs (default: all, in the
            family's order).
        per_member (bool): Write the per-member files. Defaults to True.
        one_graph (bool): Write the one graph. Defaults to True.
        layout (str): The one graph's: ``'branches'`` | ``'gather'``.
        input_shape (Sequence[int], optional): (C, H, W) of one
            preprocessed image (default: the menu's ``input_shape``).
        opset_version (int): ONNX opset. Defaults to 17.
        force (bool): Overwrite existing files. Defaults to False.

    Returns:
        dict: ``members`` (names, in index order), ``member_files``
        {name: path} (empty without ``per_member``), ``one_graph`` (path
        or None), ``layout``, ``member_input``, ``input_shape``,
        ``opset_version``.

    Raises:
        ImportError: onnx / onnxruntime missing.
        ValueError: An invalid member (naming the family's) or layout, no
            output asked for, an unsupported model
            (:func:`mmst.deploy.check_onnx_task`), no input shape, or (with
            ``'gather'``) a block that does not take one tensor.
        FileExistsError: An output exists and ``force`` is False.
    """
    _require_onnx()
    if not (per_member or one_graph):
        raise ValueError(
            'per_member=False and one_graph=False write nothing; allowed: '
            'at least one of them'
        )
    if layout not in LAYOUTS:
        raise ValueError(
            f'layout={layout!r} is invalid; allowed: ' + ' | '.join(LAYOUTS)
        )
    check_onnx_task(family.model)
    names = [family.row(m)['name'] for m in (members or family.members)]
    if input_shape is None:
        input_shape = family.menu.get('input_shape')
        if input_shape is None:
            raise ValueError(
                "input_shape=None is invalid: the family's menu has no "
                'input_shape; allowed: (C, H, W) of the preprocessed input'
            )
    graph_file = osp.join(out_dir, ONE_GRAPH_NAME) if one_graph else None
    files = {n: osp.join(out_dir, member_file_name(n)) for n in names}
    check_outputs(
        (list(files.values()) if per_member else [])
        + ([graph_file] if graph_file else []),
        force,
    )
    os.makedirs(out_dir, exist_ok=True)
    active = family.member
    with tempfile.TemporaryDirectory() as tmp:
        if not per_member:
            files = {n: osp.join(tmp, member_file_name(n)) for n in names}
        try:
            if per_member or layout == 'branches':
                for name in names:
                    family.set_member(name)
                    export_onnx(
                        family.model,
                        files[name],
                        input_shape=input_shape,
                        opset_version=opset_version,
                        force=True,
                        fold_bn=False,
                    )
        finally:
            family.set_member(active)
        if graph_file and layout == 'branches':
            merged = merge_member_graphs([files[n] for n in names])
            _save_with_members(merged, graph_file, names)
        elif graph_file:
            _export_gathered(
                family, names, input_shape, graph_file, opset_version
            )
    return dict(
        members=names,
        member_files=files if per_member else {},
        one_graph=graph_file,
        layout=layout,
        member_input=MEMBER_INPUT,
        input_shape=list(input_shape),
        opset_version=opset_version,
    )


def family_onnx_parity(
    family, exported: dict, inputs: Iterable[torch.Tensor]
) -> Dict[str, dict]:
    """Check every member's ONNX outputs against PyTorch's, ``family``
    switched to the member, on the same ``inputs``
    (:func:`mmst.deploy.onnx_parity`: within ``2 * gamma(L) *
    max|output|``, the float32 rounding bound of
    :mod:`mmst.deploy.rounding`).

    Args:
        family (DepthFamily): The family the files were exported from
            (its active member is restored).
        exported (dict): :func:`export_family_onnx`'s result.
        inputs (Iterable[Tensor]): Preprocessed (N, C, H, W) batches, e.g.
            :func:`mmst.deploy.eval_inputs`.

    Returns:
        dict: {member name: {``'member_file'``, ``'one_graph'``: the
        :func:`mmst.deploy.onnx_parity` result}} (the files exported).

    Raises:
        ValueError: A member's outputs differ by more than the bound.
    """
    import numpy as np

    inputs = list(inputs)
    found: Dict[str, dict] = {}
    active = family.member
    try:
        for i, name in enumerate(exported['members']):
            family.set_member(name)
            found[name] = {}
            if name in exported['member_files']:
                found[name]['member_file'] = onnx_parity(
                    family.model, exported['member_files'][name], inputs
                )
            if exported['one_graph']:
                feeds = {MEMBER_INPUT: np.array(i, dtype=np.int64)}
                found[name]['one_graph'] = onnx_parity(
                    family.model, exported['one_graph'], inputs, feeds=feeds
                )
    finally:
        family.set_member(active)
    return found


def family_onnx_latency(
    exported: dict,
    inputs: torch.Tensor,
    warmup: int = 5,
    repeats: int = 30,
    threads: Optional[int] = None,
    members: Optional[Sequence[str]] = None,
) -> Dict[str, dict]:
    """ONNX Runtime latency (CPU provider; :func:`mmst.analysis.cost.
    onnxruntime_latency`) of the members exported by
    :func:`export_family_onnx`, each from its own file and from the one
    graph, one after the other.

    Args:
        exported (dict): :func:`export_family_onnx`'s result.
        inputs (Tensor): One (N, C, H, W) batch.
        warmup (int): Untimed runs. Defaults to 5.
        repeats (int): Timed runs. Defaults to 30.
        threads (int, optional): ``intra_op_num_threads`` (None: ORT's).
        members (Sequence[str], optional): Names of exported members
            (default: all).

    Returns:
        dict: {member name: {``'member_file'``, ``'one_graph'``: median,
        quartiles ... in ms (:func:`mmst.analysis.cost.summarize`)}}.

    Raises:
        ValueError: A member that was not exported (naming those that
            were).
    """
    import numpy as np

    from mmst.analysis.cost import onnxruntime_latency

    timing = dict(warmup=warmup, repeats=repeats, threads=threads)
    names = exported['members']
    bad = [n for n in members or () if n not in names]
    if bad:
        raise ValueError(
            f'members {bad} were not exported; allowed: ' + ' | '.join(names)
        )
    found: Dict[str, dict] = {}
    for name in members or names:
        i = names.index(name)
        found[name] = {}
        if name in exported['member_files']:
            found[name]['member_file'] = onnxruntime_latency(
                exported['member_files'][name], inputs, **timing
            )
        if exported['one_graph']:
            feeds = {MEMBER_INPUT: np.array(i, dtype=np.int64)}
            found[name]['one_graph'] = onnxruntime_latency(
                exported['one_graph'], inputs, feeds=feeds, **timing
            )
    return found


def export_family_checkpoint_onnx(
    checkpoint: str,
    out_dir: str,
    config=None,
    members: Optional[Sequence] = None,
    layout: str = 'branches',
    parity_images: int = 8,
    force: bool = False,
) -> dict:
    """Load a family checkpoint (:func:`mmst.apis.init_family`), export
    its members (:func:`export_family_onnx`: per-member files and the one
    graph) and check each against PyTorch on the first ``parity_images``
    images of the config's test split (:func:`family_onnx_parity`).

    Args:
        checkpoint (str): The family checkpoint.
        out_dir (str): Output folder.
        config (str | Config, optional): Its config (None: the menu's).
        members (Sequence, optional): Member specs (default: all).
        layout (str): The one graph's layout (:data:`LAYOUTS`).
        parity_images (int): Test images of the check (>= 1). Defaults
            to 8.
        force (bool): Overwrite existing files. Defaults to False.

    Returns:
        dict: :func:`export_family_onnx`'s result and ``parity`` (per
        member, :func:`family_onnx_parity`).

    Raises:
        ValueError: ``parity_images < 1``, and as the functions above
            (a member whose outputs differ by more than the bound
            included).
    """
    from mmst.apis import init_family

    from .onnx import eval_inputs

    if parity_images < 1:
        raise ValueError(
            f'parity_images={parity_images!r} is invalid; allowed: >= 1'
        )
    family = init_family(config, checkpoint)
    exported = export_family_onnx(
        family, out_dir, members, layout=layout, force=force
    )
    inputs = eval_inputs(family.model.cfg, family.model, parity_images)
    exported['parity'] = family_onnx_parity(family, exported, inputs)
    return exported
