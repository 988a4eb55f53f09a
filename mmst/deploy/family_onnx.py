"""ONNX export of a depth family (:class:`mmst.apis.DepthFamily`;
``docs/family.md``, "ONNX"), two ways:

- **per-member files**: one ``.onnx`` file per member, the
  :func:`mmst.deploy.export_onnx` of the family's model switched to that
  member (its blocks only, its BN statistics);
- **one graph** with a second input ``member`` (int64 scalar, the member's
  index; the names in the file's metadata, :data:`MEMBERS_KEY`): a binary
  tree of ONNX ``If`` nodes over the members' own graphs, the shared
  weights stored once (:func:`merge_member_graphs`).

Skipped blocks are never computed. :func:`family_onnx_parity` checks every
member against PyTorch (the family switched to it) within the float32
rounding bound of :mod:`mmst.deploy.rounding`; :func:`family_onnx_latency`
times them with ONNX Runtime (``benchmarks/family_switch.py --onnx``).
"""

import hashlib
import json
import os
import os.path as osp
import tempfile
from typing import Dict, Iterable, Optional, Sequence

import torch

from .export import check_outputs
from .onnx import _require_onnx, check_onnx_task, export_onnx, onnx_parity

#: The one graph's file name in the output folder.
ONE_GRAPH_NAME = 'family.onnx'
#: The one graph's input that selects the member (int64, a scalar).
MEMBER_INPUT = 'member'
#: Metadata key of the one graph: the members' names (JSON list) in the
#: order of the ``member`` index.
MEMBERS_KEY = 'mmst_family_members'


def member_file_name(name: str) -> str:
    """The per-member file of member ``name``: ``'[1,2,1]'`` ->
    ``'member_1-2-1.onnx'``."""
    return 'member_' + name.strip('[]').replace(',', '-') + '.onnx'


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


def export_family_onnx(
    family,
    out_dir: str,
    members: Optional[Sequence] = None,
    per_member: bool = True,
    one_graph: bool = True,
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
    :data:`MEMBERS_KEY`). In it a binary tree of ``If`` nodes picks the
    member's own graph (:func:`merge_member_graphs`); the weights are
    stored once, each branch holds its member's BN statistics, which ONNX
    Runtime folds into the convolutions when it loads the file.

    In both forms, the blocks the member skips are not computed. The
    per-member files keep BN layers unfolded too (``fold_bn=False``); ONNX
    Runtime folds them at load.

    Args:
        family (DepthFamily): The family (:func:`mmst.apis.init_family`);
            its active member is restored afterwards.
        out_dir (str): Output folder.
        members (Sequence, optional): Member specs (default: all, in the
            family's order).
        per_member (bool): Write the per-member files. Defaults to True.
        one_graph (bool): Write the one graph. Defaults to True.
        input_shape (Sequence[int], optional): (C, H, W) of one
            preprocessed image (default: the menu's ``input_shape``).
        opset_version (int): ONNX opset. Defaults to 17.
        force (bool): Overwrite existing files. Defaults to False.

    Returns:
        dict: ``members`` (names, in index order), ``member_files``
        {name: path} (empty without ``per_member``), ``one_graph`` (path
        or None), ``member_input``, ``input_shape``,
        ``opset_version``.

    Raises:
        ImportError: onnx / onnxruntime missing.
        ValueError: An invalid member (naming the family's), no output
            asked for, an unsupported model
            (:func:`mmst.deploy.check_onnx_task`) or no input shape.
        FileExistsError: An output exists and ``force`` is False.
    """
    _require_onnx()
    if not (per_member or one_graph):
        raise ValueError(
            'per_member=False and one_graph=False write nothing; allowed: '
            'at least one of them'
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
        if graph_file:
            merged = merge_member_graphs([files[n] for n in names])
            _save_with_members(merged, graph_file, names)
    return dict(
        members=names,
        member_files=files if per_member else {},
        one_graph=graph_file,
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
    exported = export_family_onnx(family, out_dir, members, force=force)
    inputs = eval_inputs(family.model.cfg, family.model, parity_images)
    exported['parity'] = family_onnx_parity(family, exported, inputs)
    return exported
