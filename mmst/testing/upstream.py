"""The upstream configs users start from, with ST added in one step.

Three parts, used by ``tests/test_foundation/test_upstream_configs.py``
and ``tools/misc/upstream_configs.py`` (its results:
``docs/upstream_configs.md``):

- **Discovery** (:func:`discover`): every config in an installed library's
  own config folder (``<package>/.mim/configs``; ``_base_`` fragments
  excluded) whose model has a backbone of the **ResNet family**: a class
  the library registers that subclasses the library's own ``ResNet``
  (ResNet, ResNetV1c/d, ResNeXt, SE-ResNet(Xt), ResNeSt, Res2Net, RegNet,
  ResNet_CIFAR, SCNet, DetectoRS' and TridentNet's ResNets ...), i.e. the
  backbones whose residual stages mmst reads from ``res_layers``. A text
  pass keeps the files whose own text or base files name one of these
  types; those are loaded as a user's config loads them (through
  ``_base_ = ['library::path']``) and their backbone is checked. A
  family config that cannot be tried is *refused* with its reason
  (:class:`Discovered`).
- **Generated batches** (:func:`generated_batch`): a small batch of random
  images with random ground truth for the config's task, packed by the
  library's own packing transform (``PackInputs``, ``PackDetInputs``,
  ``PackSegInputs``, ``PackPoseInputs``; pose targets by the config's
  ``GenerateTarget``).
- **The check** (:func:`check_config`): the config with README's snippet
  added (``_base_ = [spec]`` + the snippet, read from README.md) builds on
  the CPU with random weights, runs one ``StimulativeTraining.train_step``
  with finite losses, and :func:`mmst.apis.plain_config` of it gives back
  the upstream ``model``; the plain model takes the ST model's state dict
  strictly and predicts.

Nothing is downloaded: pretrained ``init_cfg`` / ``pretrained`` entries
are cleared. Sizes a model fixes for its real inputs (mmseg's padding
``size`` and sliding-window ``crop_size``, mmdet's ``BatchFixedSizePad``)
are set to the generated input size, in the ST config and in the upstream
config alike (:func:`fit_to_cpu`).
"""

import ast
import copy
import importlib
import inspect
import json
import math
import os
import random
import re
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

#: The libraries whose config folders are searched, in this order.
LIBRARIES = ('mmpretrain', 'mmdet', 'mmseg', 'mmpose')

#: Model config keys that name files a model needs besides its config
#: (a teacher's checkpoint or config): such configs are refused.
NEEDS_FILES = ('teacher_ckpt', 'teacher_config', 'ckpt', 'checkpoint_path')

#: The README marker after which the one-step snippet's python block is.
SNIPPET_MARKER = '<!-- st-snippet -->'

#: Generated input size (h, w) per library; pose uses its codec's
#: ``input_size``, ``ResNet_CIFAR`` classifiers 32 x 32.
INPUT_SIZES = {
    'mmpretrain': (64, 64),
    'mmdet': (128, 160),
    'mmseg': (128, 128),
}


# -- discovery ------------------------------------------------------------
@dataclass
class Discovered:
    """One config of a library's config folder.

    Attributes:
        library (str): ``'mmpretrain'``, ``'mmdet'``, ``'mmseg'`` or
            ``'mmpose'``.
        path (str): Its path inside the library's config folder, e.g.
            ``'retinanet/retinanet_r18_fpn_1x_coco.py'``.
        backbone (str, optional): The model's backbone type as the config
            writes it; None when the config did not load or has no
            top-level backbone.
        model (str, optional): The model's type.
        family (bool): The backbone is of the ResNet family.
        refusal (str, optional): Why a family config (or one that did not
            load) is not tried; None when it is tried.
        model_key (str): The model config as canonical JSON: configs with
            equal keys build the same model (they differ in data or
            schedule only).
    """

    library: str
    path: str
    backbone: Optional[str] = None
    model: Optional[str] = None
    family: bool = False
    refusal: Optional[str] = None
    model_key: str = ''

    @property
    def spec(self) -> str:
        """``'library::path'``, as a ``_base_`` entry names it."""
        return f'{self.library}::{self.path}'

    @property
    def tried(self) -> bool:
        """A family config that is not refused."""
        return self.family and self.refusal is None


def config_folder(library: str) -> Path:
    """The config folder an installed ``library`` ships
    (``<package>/.mim/configs``), which ``'library::path'`` resolves in.

    Raises:
        ValueError: ``library`` is not one of :data:`LIBRARIES`.
        FileNotFoundError: The library is installed without its configs.
    """
    if library not in LIBRARIES:
        raise ValueError(
            f'library={library!r} is invalid; allowed: '
            + ' | '.join(LIBRARIES)
        )
    package = importlib.import_module(library)
    folder = Path(package.__file__).parent / '.mim' / 'configs'
    if not folder.is_dir():
        raise FileNotFoundError(
            f'{library} is installed without its configs: {folder} does not '
            'exist (install it from PyPI or with mim, which ship them)'
        )
    return folder


def _registry(library: str):
    """The ``library``'s MODELS registry, its modules registered."""
    utils = importlib.import_module(f'{library}.utils')
    utils.register_all_modules(init_default_scope=False)
    return importlib.import_module(f'{library}.registry').MODELS


def family_classes(library: str) -> Dict[str, type]:
    """The ResNet family of ``library``: the classes its MODELS registry
    holds that subclass its own ``ResNet`` backbone, by registered name."""
    registry = _registry(library)
    base = importlib.import_module(f'{library}.models.backbones').ResNet
    return {
        name: cls
        for name, cls in registry.module_dict.items()
        if inspect.isclass(cls) and issubclass(cls, base)
    }


def _strings_and_bases(path: Path) -> Tuple[set, List[str]]:
    """The string constants of a config file and its ``_base_`` entries
    (without running it)."""
    tree = ast.parse(path.read_text(encoding='utf-8'), str(path))
    strings, bases = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.add(node.value)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets
        ):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            bases += [value] if isinstance(value, str) else list(value)
    return strings, bases


class _TextIndex:
    """Which config files name a type, through their ``_base_`` files,
    from the files' text alone (a cheap filter before loading)."""

    def __init__(self) -> None:
        self._files: Dict[Path, Tuple[set, List[Path]]] = {}

    def _read(self, path: Path) -> Tuple[set, List[Path]]:
        if path not in self._files:
            self._files[path] = (set(), [])  # a cycle reads as empty
            try:
                strings, bases = _strings_and_bases(path)
            except (OSError, SyntaxError, UnicodeDecodeError):
                strings, bases = {'<unreadable>'}, []
            resolved = []
            for base in bases:
                if '::' in base:
                    library, _, rel = base.partition('::')
                    try:
                        resolved.append(config_folder(library) / rel)
                    except (ValueError, ImportError, FileNotFoundError):
                        strings.add('<unresolved base>')
                else:
                    resolved.append((path.parent / base).resolve())
            self._files[path] = (strings, resolved)
        return self._files[path]

    def names(self, path: Path, seen: Optional[set] = None) -> set:
        """The string constants of ``path`` and of its bases, recursively,
        with scope prefixes (``'mmdet.ResNet'``) also as bare names."""
        seen = set() if seen is None else seen
        if path in seen:
            return set()
        seen.add(path)
        strings, bases = self._read(path)
        out = set(strings) | {s.rpartition('.')[2] for s in strings}
        for base in bases:
            out |= self.names(base, seen)
        return out


def config_files(library: str) -> List[str]:
    """The configs of ``library``'s config folder, as paths relative to
    it, sorted; files under a ``_base_`` folder (model, data and schedule
    fragments) are not configs a user starts from."""
    folder = config_folder(library)
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob('*.py')
        if '_base_' not in p.relative_to(folder).parts
    )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def walk_dicts(value: Any) -> Iterator[dict]:
    """Every dict inside ``value`` (dicts and lists, depth first)."""
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from walk_dicts(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from walk_dicts(v)


def _task_of(library: str, model_type: Any) -> Optional[str]:
    """The mmst task registered for the model class ``model_type`` names
    in ``library``'s registry; None when no task handles it."""
    from mmst.models.tasks import infer_task

    cls = model_type
    if isinstance(model_type, str):
        cls = _registry(library).get(model_type)
    if cls is None:
        return None
    try:
        return infer_task(cls)
    except TypeError:
        return None


def classify(library: str, path: str, cfg) -> Discovered:
    """What a loaded config is: its backbone, whether it is of the ResNet
    family, and for a family config why it is refused (None: tried).

    Refusal reasons: no top-level ``model.backbone`` (wrappers such as
    semi-supervised or tracking models hold their detector elsewhere, and
    ``StimulativeTraining`` needs ``architecture.backbone``); no mmst task
    for the model's class (self-supervised, retrieval, tracking models);
    a model that needs other files (a teacher's checkpoint or config).

    Args:
        library (str): The library whose folder holds the config.
        path (str): The config's path in that folder.
        cfg (Config): The loaded config.

    Returns:
        Discovered: The record.
    """
    found = Discovered(library, path)
    # configs of one library may build in another's scope (mmpretrain's
    # detection benchmarks of self-supervised weights are mmdet configs)
    scope = cfg.get('default_scope') or library
    scope = scope if scope in LIBRARIES else library
    model = cfg.get('model')
    if not isinstance(model, dict):
        found.refusal = f'no model dict (model={type(model).__name__})'
        return found
    found.model = str(model.get('type'))
    found.model_key = _canonical(model.to_dict())
    backbone = model.get('backbone')
    if not isinstance(backbone, dict):
        # a family backbone nested in a wrapper (semi-supervised, tracking,
        # retrieval models) is still counted, and refused
        nested = [
            d
            for d in walk_dicts(model.to_dict())
            if isinstance(d.get('backbone'), dict)
        ]
        if not nested:
            return found
        backbone = nested[0]['backbone']
        found.backbone = str(backbone.get('type'))
        found.family = _in_family(scope, backbone.get('type'))
        found.refusal = (
            f'no top-level model.backbone (model {found.model} holds it '
            'deeper); StimulativeTraining needs architecture.backbone'
        )
        return found
    found.backbone = str(backbone.get('type'))
    found.family = _in_family(scope, backbone.get('type'))
    if not found.family:
        return found
    files = sorted(
        {
            k
            for d in walk_dicts(model.to_dict())
            for k in NEEDS_FILES
            if d.get(k)
        }
    )
    if files:
        found.refusal = (
            'needs files besides its config (a teacher model): '
            + ', '.join(files)
        )
        return found
    if _task_of(scope, model.get('type')) is None:
        found.refusal = (
            f'no mmst task handles model type {found.model} (tasks: '
            'classifiers, detectors, segmentors, pose estimators)'
        )
    return found


def _in_family(library: str, type_: Any) -> bool:
    if inspect.isclass(type_):
        base = importlib.import_module(f'{library}.models.backbones').ResNet
        return issubclass(type_, base)
    if not isinstance(type_, str):
        return False
    scope, _, name = type_.rpartition('.')
    return name in family_classes(scope if scope in LIBRARIES else library)


def discover(
    libraries: Sequence[str] = LIBRARIES,
    paths: Optional[Dict[str, Sequence[str]]] = None,
) -> Dict[str, List[Discovered]]:
    """The configs of each library's config folder that the text pass
    keeps, loaded and classified (:func:`classify`).

    The text pass keeps a config when its file or a base file names a
    ResNet-family type (of any of :data:`LIBRARIES`) as a string; only
    those are loaded, as a user's config loads them: ``Config.fromfile``
    of a child config ``_base_ = ['library::path']`` (0.1-0.3 s each; all
    four libraries: about 4 minutes).
    A config that fails to load so is kept (counted with the family, its
    backbone unknown) and refused with the error.

    Args:
        libraries (Sequence[str]): Libraries to search.
        paths (dict, optional): Per library, the config paths to look at
            (default: all, :func:`config_files`).

    Returns:
        dict[str, list[Discovered]]: Per library, the kept configs in path
        order; ``family`` tells the ResNet-family ones, ``refusal`` the
        ones not tried.
    """
    names = set()
    for library in LIBRARIES:
        try:
            names |= set(family_classes(library))
        except ImportError:
            continue
    index = _TextIndex()
    out = {}
    for library in libraries:
        folder = config_folder(library)
        kept = []
        for rel in paths[library] if paths else config_files(library):
            if not index.names(folder / rel) & names:
                continue
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    spec = f'{library}::{rel}'
                    cfg = load_config(f'_base_ = [{spec!r}]\n', tmp)
            except Exception as e:
                kept.append(
                    Discovered(
                        library,
                        rel,
                        family=True,
                        refusal=f'config does not load: {_one_line(e)}',
                    )
                )
                continue
            kept.append(classify(library, rel, cfg))
        out[library] = kept
    return out


def _one_line(error: BaseException, limit: int = 400) -> str:
    """``Type: message (notes)`` on one line, at most ``limit`` long."""
    notes = [n for n in getattr(error, '__notes__', ()) if n]
    text = f'{type(error).__name__}: {error}'.strip()
    if notes:
        text += ' (' + '; '.join(notes) + ')'
    text = text.splitlines()
    line = ' '.join(t.strip() for t in text if t.strip())
    return line if len(line) <= limit else line[: limit - 3] + '...'


def distinct_models(found: Sequence[Discovered]) -> List[List[Discovered]]:
    """The tried configs grouped by model (equal ``model_key``), each
    group in path order, groups in the order of their first path."""
    groups: Dict[str, List[Discovered]] = {}
    for item in found:
        if item.tried:
            groups.setdefault(item.model_key, []).append(item)
    return list(groups.values())


def sample(
    found: Sequence[Discovered], per_library: Optional[int], seed: int
) -> List[List[Discovered]]:
    """A seeded sample of ``per_library`` distinct models of one library
    (all when None or when there are fewer), in path order.

    Returns:
        list[list[Discovered]]: The sampled groups (:func:`distinct_models`);
        the first config of a group stands for it.
    """
    groups = distinct_models(found)
    if per_library is None or per_library >= len(groups):
        return groups
    chosen = random.Random(seed).sample(range(len(groups)), per_library)
    return [groups[i] for i in sorted(chosen)]


# -- generated batches ----------------------------------------------------
def _pipeline_dicts(cfg) -> List[dict]:
    """Every dict of the config's training data settings (data loader,
    ``train_pipeline``), depth first."""
    roots = [cfg.get('train_dataloader'), cfg.get('train_pipeline')]
    return [d for root in roots for d in walk_dicts(root)]


def _transform(cfg, *names: str) -> Optional[dict]:
    """The last transform of the training data settings whose type is one
    of ``names``, as a copy without its scope (a ``'scope.'`` prefix or
    the ``_scope_`` MMEngine adds to configs inherited through
    ``'library::path'``: the caller builds it in the model's scope);
    None if absent."""
    found = None
    for d in _pipeline_dicts(cfg):
        type_ = d.get('type')
        if isinstance(type_, str) and type_.rpartition('.')[2] in names:
            found = d
    if found is None:
        return None
    found = copy.deepcopy(_plain(found))
    found.pop('_scope_', None)
    found['type'] = found['type'].rpartition('.')[2]
    return found


def _plain(value: Any) -> Any:
    """``value`` with ConfigDicts turned into dicts (deep)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _smallest(model: dict, *keys: str) -> Optional[int]:
    """The smallest positive integer any of ``keys`` has in ``model``."""
    values = [
        d[k]
        for d in walk_dicts(model)
        for k in keys
        if isinstance(d.get(k), int) and not isinstance(d.get(k), bool)
    ]
    values = [v for v in values if v > 0]
    return min(values) if values else None


def input_size(cfg, library: str) -> Tuple[int, int]:
    """The generated input size ``(h, w)`` for a config of ``library``:
    :data:`INPUT_SIZES`, 32 x 32 for ``ResNet_CIFAR`` backbones, the
    codec's ``input_size`` for pose models.

    Raises:
        ValueError: A pose config without a codec ``input_size``.
    """
    model = cfg.model.get('architecture', cfg.model)
    if library == 'mmpose':
        codec = _codec(cfg)
        codec = codec[0] if isinstance(codec, list) else codec
        if not codec or 'input_size' not in codec:
            raise ValueError(
                'input_size: the pose config has no codec input_size '
                '(GenerateTarget encoder or model.head.decoder)'
            )
        w, h = codec['input_size']
        return int(h), int(w)
    backbone = str(model.get('backbone', {}).get('type', ''))
    if backbone.rpartition('.')[2] == 'ResNet_CIFAR':
        return 32, 32
    return INPUT_SIZES[library]


def _codec(cfg) -> Any:
    """The pose config's target encoder (the training pipeline's
    ``GenerateTarget`` encoder, else ``model.head.decoder``)."""
    generate = _transform(cfg, 'GenerateTarget')
    if generate is not None:
        return generate['encoder']
    model = cfg.model.get('architecture', cfg.model)
    return _plain(model.get('head', {}).get('decoder'))


def _images(rng: np.random.RandomState, num: int, h: int, w: int) -> list:
    return [
        rng.randint(0, 256, (h, w, 3)).astype(np.uint8) for _ in range(num)
    ]


def _boxes(rng: np.random.RandomState, num: int, h: int, w: int):
    """``num`` random boxes ``(x1, y1, x2, y2)`` inside an ``h`` x ``w``
    image, 15-40% of its sides."""
    x1 = rng.uniform(0, w * 0.6, num)
    y1 = rng.uniform(0, h * 0.6, num)
    x2 = np.minimum(x1 + rng.uniform(w * 0.15, w * 0.4, num), w)
    y2 = np.minimum(y1 + rng.uniform(h * 0.15, h * 0.4, num), h)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)


def _pack(library: str, cfg, default: str, results: List[dict]) -> dict:
    """``results`` packed by the config's own packing transform (its
    ``meta_keys`` ...), else ``default``; a batch as the data loader's
    ``pseudo_collate`` gives it."""
    registry = importlib.import_module(f'{library}.registry')
    pack_cfg = _transform(cfg, default) or dict(type=default)
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope(library):
        pack = registry.TRANSFORMS.build(pack_cfg)
    packed = [pack(r) for r in results]
    return dict(
        inputs=[p['inputs'] for p in packed],
        data_samples=[p['data_samples'] for p in packed],
    )


def generated_batch(
    cfg,
    library: str,
    num: int = 2,
    seed: int = 0,
    size: Optional[Tuple[int, int]] = None,
) -> dict:
    """A batch of ``num`` random images of :func:`input_size` with random
    ground truth for the config's model, as a data loader gives it
    (``inputs``: uint8 ``(3, H, W)`` tensors; ``data_samples``), packed by
    the library's own transforms.

    - mmpretrain: one label per image (``PackInputs``);
    - mmdet: 3 boxes per image and their labels; instance masks (the
      boxes, filled) when the training pipeline loads masks; a label map
      when it loads one (panoptic); 32 proposals (the boxes and 29 random
      ones) when it loads proposals (Fast R-CNN) (``PackDetInputs``);
    - mmseg: a label map with an ignored (255) top band (``PackSegInputs``);
    - mmpose: one person crop filling the image, its keypoints inside it
      (the last two unlabelled), encoded by the config's ``GenerateTarget``
      (``PackPoseInputs``).

    Labels are below the smallest ``num_classes`` (``num_things_classes``)
    the model has.

    Args:
        cfg (Config): The config (upstream or ST: the ST model's
            ``architecture`` is read).
        library (str): Its scope.
        num (int): Images in the batch.
        seed (int): Seed of the images and the ground truth.
        size (tuple, optional): ``(h, w)`` instead of :func:`input_size`
            (not for pose models: their codec fixes it).

    Returns:
        dict: ``inputs`` and ``data_samples`` lists.

    Raises:
        ValueError: ``library`` is not one of :data:`LIBRARIES`.
    """
    rng = np.random.RandomState(seed)
    h, w = size if size is not None else input_size(cfg, library)
    images = _images(rng, num, h, w)
    model = _plain(cfg.model.get('architecture', cfg.model))
    classes = _smallest(model, 'num_classes', 'num_things_classes') or 1
    base = [
        dict(
            img=img,
            img_id=i,
            sample_idx=i,
            img_path=f'generated_{i}.jpg',
            ori_shape=(h, w),
            img_shape=(h, w),
            scale_factor=(1.0, 1.0),
            flip=False,
            flip_direction=None,
        )
        for i, img in enumerate(images)
    ]
    if library == 'mmpretrain':
        for r in base:
            r['gt_label'] = int(rng.randint(classes))
        return _pack(library, cfg, 'PackInputs', base)
    if library == 'mmdet':
        from mmdet.structures.bbox import HorizontalBoxes
        from mmdet.structures.mask import BitmapMasks

        load = _transform(
            cfg, 'LoadAnnotations', 'LoadPanopticAnnotations'
        ) or dict(type='LoadAnnotations')
        panoptic = load['type'].endswith('LoadPanopticAnnotations')
        with_mask = load.get('with_mask', panoptic)
        with_seg = load.get('with_seg', panoptic)
        proposals = _transform(cfg, 'LoadProposals') is not None
        for r in base:
            boxes = _boxes(rng, 3, h, w)
            if proposals:  # Fast R-CNN: precomputed proposals
                r['proposals'] = np.concatenate([boxes, _boxes(rng, 29, h, w)])
                r['proposals_scores'] = np.ones(32, dtype=np.float32)
            r['gt_bboxes'] = HorizontalBoxes(boxes)
            r['gt_bboxes_labels'] = rng.randint(0, classes, 3).astype(np.int64)
            r['gt_ignore_flags'] = np.zeros(3, dtype=bool)
            if with_mask:
                masks = np.zeros((3, h, w), dtype=np.uint8)
                for m, (x1, y1, x2, y2) in zip(masks, boxes.astype(int)):
                    m[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)] = 1
                r['gt_masks'] = BitmapMasks(masks, h, w)
            if with_seg:
                seg = rng.randint(0, classes, (h, w)).astype(np.int32)
                seg[: h // 8] = 255
                r['gt_seg_map'] = seg
        return _pack(library, cfg, 'PackDetInputs', base)
    if library == 'mmseg':
        for r in base:
            seg = rng.randint(0, classes, (h, w)).astype(np.uint8)
            seg[: h // 8] = 255
            r.update(
                gt_seg_map=seg,
                seg_map_path=None,
                pad_shape=(h, w),
                reduce_zero_label=False,
            )
        return _pack(library, cfg, 'PackSegInputs', base)
    if library == 'mmpose':
        from mmengine.registry import DefaultScope
        from mmpose.registry import TRANSFORMS

        head = model.get('head', {})
        k = head.get('num_joints') or head.get('out_channels')
        generate_cfg = _transform(cfg, 'GenerateTarget') or dict(
            type='GenerateTarget', encoder=_codec(cfg)
        )
        with DefaultScope.overwrite_default_scope('mmpose'):
            generate = TRANSFORMS.build(generate_cfg)
        bbox = np.array([[0, 0, w, h]], dtype=np.float32)
        center = np.array([[w / 2, h / 2]], dtype=np.float32)
        scale = np.array([[w, h]], dtype=np.float32)
        for i, r in enumerate(base):
            keypoints = rng.uniform([4, 4], [w - 4, h - 4], (1, k, 2))
            keypoints = keypoints.astype(np.float32)
            visible = np.ones((1, k), dtype=np.float32)
            visible[0, -2:] = 0
            r.update(
                id=i,
                category_id=1,
                bbox=bbox,
                bbox_center=center,
                bbox_scale=scale,
                bbox_score=np.ones(1, dtype=np.float32),
                keypoints=keypoints,
                keypoints_visible=visible,
                transformed_keypoints=keypoints.copy(),
                num_keypoints=k - 2,
                input_size=(w, h),
                input_center=center[0],
                input_scale=scale[0],
                flip_indices=list(range(k)),
                dataset_keypoint_weights=np.ones(k, dtype=np.float32),
            )
            base[i] = generate(r)
        return _pack(library, cfg, 'PackPoseInputs', base)
    raise ValueError(
        f'library={library!r} is invalid; allowed: ' + ' | '.join(LIBRARIES)
    )


# -- the check ------------------------------------------------------------
def readme_snippet(readme: Optional[os.PathLike] = None) -> str:
    """README's one-step snippet: the ```` ```python ```` block that
    follows :data:`SNIPPET_MARKER`, without its fences.

    Args:
        readme (PathLike, optional): The README (default: the repository's
            ``README.md`` beside the ``mmst`` package).

    Returns:
        str: The snippet's code, ending with a newline.

    Raises:
        FileNotFoundError: No README (an installed mmst has none: pass its
            path).
        ValueError: No marker, or no python block after it.
    """
    if readme is None:
        readme = Path(__file__).resolve().parents[2] / 'README.md'
    text = Path(readme).read_text(encoding='utf-8')
    if SNIPPET_MARKER not in text:
        raise ValueError(
            f'readme_snippet: {readme} has no {SNIPPET_MARKER!r} marker; '
            'allowed: a README with the marker before the snippet'
        )
    after = text.split(SNIPPET_MARKER, 1)[1]
    match = re.match(r'\s*```python\n(.*?)^```', after, re.S | re.M)
    if match is None:
        raise ValueError(
            f'readme_snippet: no ```python block right after '
            f'{SNIPPET_MARKER!r} in {readme}'
        )
    return match.group(1)


def st_config_text(spec: str, snippet: str) -> str:
    """The text of a user config that adds ST to the upstream config
    ``spec`` (``'library::path'``) in one step: ``_base_`` + ``snippet``."""
    return f'_base_ = [{spec!r}]\n\n{snippet}'


def load_config(text: str, folder: os.PathLike, name: str = 'config.py'):
    """``text`` written to ``folder/name`` and loaded with
    ``Config.fromfile`` (which resolves ``'library::path'`` bases only
    from a file)."""
    from mmengine.config import Config

    path = Path(folder) / name
    path.write_text(text, encoding='utf-8')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return Config.fromfile(str(path))


def clear_pretrained(model: dict) -> None:
    """Drop, in place, what would download weights: ``pretrained`` values
    and ``init_cfg`` entries of type ``'Pretrained'`` (a dict becomes None,
    a list loses them) anywhere in ``model``."""
    for d in list(walk_dicts(model)):
        if d.get('pretrained') is not None and not isinstance(
            d['pretrained'], bool
        ):
            d['pretrained'] = None
        init = d.get('init_cfg')
        if isinstance(init, dict) and 'Pretrained' in str(init.get('type')):
            d['init_cfg'] = None
        elif isinstance(init, (list, tuple)):
            d['init_cfg'] = [
                i
                for i in init
                if not (
                    isinstance(i, dict) and 'Pretrained' in str(i.get('type'))
                )
            ] or None


def fit_to_cpu(cfg, size: Tuple[int, int]) -> None:
    """Make a config's model (an ST config's ``architecture``) cheap to
    build and run on the CPU, in place, without changing its layers (the
    state dict keeps its keys and shapes):

    - :func:`clear_pretrained`;
    - sizes it fixes for real inputs set to the generated ``size``
      ``(h, w)``: the data preprocessors' ``size`` (mmseg's padding) and
      ``BatchFixedSizePad`` sizes (mmdet), the sliding-window
      ``crop_size`` / ``stride`` of mmseg's ``test_cfg``;
    - fewer samples in ``train_cfg`` / ``test_cfg``: samplers draw at most
      64 (a two-stage detector's 512 RoIs per image dominate its CPU
      time), region proposals 200 before NMS and 100 after (from 1000 or
      more)."""
    model = cfg.model.get('architecture', cfg.model)
    clear_pretrained(model)
    preprocessors = [model.get('data_preprocessor')]
    if cfg.get('data_preprocessor') is not None:
        preprocessors.append(cfg.data_preprocessor)
    for pre in preprocessors:
        if not isinstance(pre, dict):
            continue
        if pre.get('size') is not None:
            pre['size'] = tuple(size)
        for d in walk_dicts(pre.get('batch_augments')):
            if str(d.get('type', '')).endswith('BatchFixedSizePad'):
                d['size'] = tuple(size)
    for part in ('train_cfg', 'test_cfg'):
        for d in walk_dicts(model.get(part)):
            if str(d.get('type', '')).endswith('Sampler'):
                if isinstance(d.get('num'), int) and d['num'] > 64:
                    d['num'] = 64
            if 'nms_pre' in d and 'max_per_img' in d and 'nms' in d:
                if d['max_per_img'] >= 1000:  # region proposals
                    d['nms_pre'], d['max_per_img'] = 200, 100
    test_cfg = model.get('test_cfg')
    if isinstance(test_cfg, dict) and test_cfg.get('crop_size') is not None:
        test_cfg['crop_size'] = tuple(size)
        if test_cfg.get('stride') is not None:
            test_cfg['stride'] = tuple(size)


def runner_model_cfg(cfg) -> dict:
    """``cfg.model`` as MMEngine's Runner builds it: with the config's
    top-level ``data_preprocessor`` when the model has none."""
    model = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model.setdefault(
            'data_preprocessor', copy.deepcopy(cfg.data_preprocessor)
        )
    return model


@dataclass
class CheckResult:
    """What :func:`check_config` found for one config.

    Attributes:
        spec (str): ``'library::path'``.
        outcome (str): ``'ok'``; ``'refused'`` (the upstream model alone
            does not build, or its own loss fails on the generated batch:
            not an ST matter); ``'mmst refuses'`` (mmst refuses the model
            with one of its own checks, the reason in its message);
            ``'failed'`` (anything else: an mmst defect until shown
            otherwise).
        reason (str): Empty when ``'ok'``; else the error, one line.
        backbone (str, optional): The backbone's type.
        stage_depths (list, optional): Blocks per residual stage.
        space_size (int, optional): Sub-networks in the ST model's space
            (the snippet's inter-stage rule, frozen blocks kept).
        losses (dict): ``loss_main`` and ``loss_subnet`` of the step.
        notes (list): mmst's warnings during the step.
        seconds (float): Wall time of the check.
        timings (dict): Wall time per stage (seconds), in order.
    """

    spec: str
    outcome: str = 'failed'
    reason: str = ''
    backbone: Optional[str] = None
    stage_depths: Optional[List[int]] = None
    space_size: Optional[int] = None
    losses: Dict[str, float] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: Dict[str, float] = field(default_factory=dict)


#: Stages of :func:`check_config` that run the upstream config or model
#: alone: an error there is ``'refused'`` (not an ST matter).
UPSTREAM_STAGES = (
    'loading the upstream config',
    'building the upstream model',
    "the upstream model's own loss",
    'predicting with the upstream model',
)


def _refused_by_mmst(error: BaseException) -> bool:
    """Whether ``error`` is one of mmst's own checks refusing a setting or
    a model (a ValueError / TypeError / NotImplementedError raised in mmst
    code), not a crash."""
    if not isinstance(error, (ValueError, TypeError, NotImplementedError)):
        return False
    frames = traceback.extract_tb(error.__traceback__)
    package = str(Path(__file__).resolve().parents[1])
    return bool(frames) and frames[-1].filename.startswith(package)


def _first_difference(a: Any, b: Any, where: str = 'model') -> str:
    """The first key path at which ``a`` and ``b`` differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f'{where}.{key}'
            if a[key] != b[key]:
                return _first_difference(a[key], b[key], f'{where}.{key}')
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                if x != y:
                    return _first_difference(x, y, f'{where}[{i}]')
    return where


def check_predictions(library: str, out: list, data: dict, model) -> None:
    """Check what the upstream model predicted for a generated batch: one
    data sample per image, with the task's prediction of the right shape
    and range.

    - mmpretrain: ``pred_score`` of ``(num_classes,)``, finite, in [0, 1];
    - mmdet: ``pred_instances`` boxes ``(n, 4)`` with ``x2 >= x1``,
      ``y2 >= y1``, scores in [0, 1], labels below ``num_classes``;
    - mmseg: ``pred_sem_seg`` of ``(1, H, W)`` with labels below
      ``num_classes``;
    - mmpose: ``pred_instances`` keypoints ``(1, K, 2)`` and scores
      ``(1, K)``, finite.

    Args:
        library (str): The model's scope.
        out (list): The predicted data samples.
        data (dict): The batch (``inputs``: ``(3, H, W)`` tensors).
        model (dict): The model config (for ``num_classes``).

    Raises:
        AssertionError: What is wrong, with the values.
    """
    import torch

    def check(ok: bool, what: str) -> None:
        if not ok:
            raise AssertionError(f'predict: {what}')

    num = len(data['inputs'])
    check(len(out) == num, f'{len(out)} results for {num} images')
    classes = _smallest(_plain(model), 'num_classes')
    for sample, image in zip(out, data['inputs']):
        h, w = image.shape[-2:]
        if library == 'mmpretrain':
            score = sample.pred_score
            check(score.dim() == 1, f'pred_score shape {tuple(score.shape)}')
            check(
                bool(torch.isfinite(score).all())
                and 0 <= score.min() <= score.max() <= 1,
                f'pred_score outside [0, 1]: {score}',
            )
        elif library == 'mmdet':
            pred = sample.pred_instances
            boxes = pred.bboxes
            check(boxes.dim() == 2 and boxes.shape[1] == 4, 'bboxes shape')
            check(
                bool((boxes[:, 2:] >= boxes[:, :2]).all()),
                'a box with x2 < x1 or y2 < y1',
            )
            if len(pred):
                check(
                    0 <= pred.scores.min() <= pred.scores.max() <= 1,
                    'scores outside [0, 1]',
                )
                if classes is not None and 'labels' in pred:
                    check(
                        0 <= pred.labels.min() <= pred.labels.max() < classes,
                        f'labels outside [0, {classes})',
                    )
        elif library == 'mmseg':
            seg = sample.pred_sem_seg.data
            check(
                tuple(seg.shape) == (1, h, w),
                f'pred_sem_seg shape {tuple(seg.shape)} for an image of '
                f'{(h, w)}',
            )
            if classes is not None:
                check(
                    0 <= seg.min() <= seg.max() < max(classes, 2),
                    f'labels outside [0, {classes})',
                )
        elif library == 'mmpose':
            pred = sample.pred_instances
            keypoints = np.asarray(pred.keypoints)
            scores = np.asarray(pred.keypoint_scores)
            check(
                keypoints.ndim == 3 and keypoints.shape[-1] == 2,
                f'keypoints shape {keypoints.shape}',
            )
            check(
                scores.shape == keypoints.shape[:2],
                f'keypoint_scores shape {scores.shape}',
            )
            check(
                bool(
                    np.isfinite(keypoints).all() and np.isfinite(scores).all()
                ),
                'non-finite keypoints or scores',
            )


def _upstream_loss(plain, model, data: dict) -> None:
    """The upstream model ``plain``'s own loss on ``data`` and on ``data``
    rescaled (by the ST ``model``'s task) to the smallest input a
    sub-network gets (raises what the upstream model raises; a note names
    the size)."""
    from mmst.models.tasks.base import fresh_samples

    plain.train()
    batch = plain.data_preprocessor(data, True)
    inputs, samples = batch['inputs'], batch.get('data_samples')
    plain(inputs, fresh_samples(samples), mode='loss')
    if model.size_sampler is None:
        return
    shorter = min(inputs.shape[-2:])
    small = model.size_sampler.smallest(shorter)
    inputs, samples = model.task.rescale(inputs, samples, small / shorter)
    try:
        plain(inputs, samples, mode='loss')
    except Exception as e:
        e.add_note(
            f'the upstream model alone, on the batch resized from '
            f'{tuple(batch["inputs"].shape[-2:])} to the smallest '
            f'sub-network input {tuple(inputs.shape[-2:])}'
        )
        raise


def check_config(
    spec: str,
    snippet: Optional[str] = None,
    seed: int = 0,
    num_images: int = 2,
    predict: bool = True,
    size: Optional[Tuple[int, int]] = None,
) -> CheckResult:
    """One upstream config with README's snippet added, checked on the CPU.

    1. ``_base_ = [spec]`` (the upstream config) and ``_base_ = [spec]`` +
       ``snippet`` (the ST config) are loaded; both get :func:`fit_to_cpu`.
    2. The upstream model is built (it failing: ``'refused'``), then the ST
       model as the Runner builds it (the config's top-level data
       preprocessor passed in), SyncBN reverted to BN, ``init_weights``.
    3. One ``train_step`` on :func:`generated_batch` with an SGD
       ``OptimWrapper``; every logged loss must be finite. If the step
       raises, the upstream model's own loss runs on the same batch and
       on it rescaled to the smallest sub-network input (the ST model's
       task rescales it): either failing is ``'refused'`` (at these small
       test inputs a sub-network's input may be smaller than a model
       takes; real inputs are several times larger).
    4. ``plain_config`` of the ST config has the upstream config's
       ``model`` (as the Runner would build it), and the upstream model
       loads the ST model's state dict strictly; with ``predict`` it then
       predicts the batch (one data sample per image).

    Args:
        spec (str): ``'library::path'``.
        snippet (str, optional): The ST lines (default:
            :func:`readme_snippet`).
        seed (int): Seed of the weights and the batch.
        num_images (int): Images in the batch.
        predict (bool): Run step 4's prediction.
        size (tuple, optional): ``(h, w)`` of the generated images instead
            of :func:`input_size` (not for pose models).

    Returns:
        CheckResult: The outcome; errors are caught and reported in it.
    """
    import torch
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import OptimWrapper
    from mmengine.registry import DefaultScope

    from mmst.analysis.sweep import quiet_logs
    from mmst.apis import plain_config
    from mmst.apis.launch import register_scope_modules
    from mmst.registry import MODELS

    start = time.perf_counter()
    result = CheckResult(spec)
    snippet = readme_snippet() if snippet is None else snippet
    stage = 'loading the upstream config'
    clock = [start]

    def enter(name: str) -> str:
        now = time.perf_counter()
        result.timings[stage] = result.timings.get(stage, 0.0) + now - clock[0]
        clock[0] = now
        return name

    try:
        with tempfile.TemporaryDirectory(prefix='mmst_upstream_') as tmp:
            upstream = load_config(f'_base_ = [{spec!r}]\n', tmp, 'up.py')
            stage = enter('loading the ST config')
            st_cfg = load_config(st_config_text(spec, snippet), tmp, 'st.py')
            stage = enter('preparing the configs')
        library = upstream.get('default_scope') or spec.split('::')[0]
        if size is None or library == 'mmpose':
            size = input_size(upstream, library)
        fit_to_cpu(upstream, size)
        fit_to_cpu(st_cfg, size)
        result.backbone = str(upstream.model.get('backbone', {}).get('type'))
        register_scope_modules(st_cfg)
        registry = _registry(library)
        with DefaultScope.overwrite_default_scope(library):
            stage = enter('building the upstream model')
            torch.manual_seed(seed)
            plain = revert_sync_batchnorm(
                registry.build(runner_model_cfg(upstream))
            )
            stage = enter('building the ST model')
            torch.manual_seed(seed)
            model = revert_sync_batchnorm(
                MODELS.build(runner_model_cfg(st_cfg))
            )
            with quiet_logs():
                model.init_weights()
            result.stage_depths = list(model.space.stage_depths)
            result.space_size = len(model.space)
            stage = enter('generating the batch')
            data = generated_batch(st_cfg, library, num_images, seed, size)
            stage = enter('the ST step')
            optim = OptimWrapper(
                torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
            )
            model.train()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                try:
                    log_vars = model.train_step(data, optim)
                except Exception as e:
                    stage = enter("the upstream model's own loss")
                    _upstream_loss(plain, model, data)
                    stage = enter('the ST step')
                    raise e
            result.notes = sorted(
                {str(w.message) for w in caught if 'mmst' in str(w.message)}
            )
            values = {
                k: float(v.detach() if isinstance(v, torch.Tensor) else v)
                for k, v in log_vars.items()
            }
            bad = sorted(k for k, v in values.items() if not math.isfinite(v))
            result.losses = {
                k: values[k]
                for k in ('loss_main', 'loss_subnet')
                if k in values
            }
            if bad:
                raise FloatingPointError(
                    f'non-finite logged values {bad}: '
                    + ', '.join(f'{k}={values[k]}' for k in bad)
                )
            stage = enter('plain_config')
            expected = _plain(runner_model_cfg(upstream))
            got = _plain(plain_config(st_cfg).model)
            if got != expected:
                raise AssertionError(
                    'plain_config(ST config).model differs from the upstream '
                    f'model at {_first_difference(got, expected)}'
                )
            stage = enter('loading the ST state dict into the upstream model')
            plain.load_state_dict(model.state_dict(), strict=True)
            if predict:
                # one image per batch, as the libraries' test loaders
                # (some test-time ops take one image only)
                stage = enter('predicting with the upstream model')
                plain.eval()
                out = []
                with torch.no_grad():
                    for i in range(num_images):
                        out += plain.test_step(
                            {k: v[i : i + 1] for k, v in data.items()}
                        )
                stage = enter('checking the predictions')
                check_predictions(library, out, data, upstream.model)
        enter('')
        result.outcome = 'ok'
    except Exception as e:
        upstream_stage = stage in UPSTREAM_STAGES
        if upstream_stage:
            result.outcome = 'refused'
        elif _refused_by_mmst(e):
            result.outcome = 'mmst refuses'
        else:
            result.outcome = 'failed'
        result.reason = f'{stage}: {_one_line(e)}'
    result.seconds = time.perf_counter() - start
    return result


# -- the sweep ------------------------------------------------------------
def check_in_child(spec: str, timeout: float, **kwargs) -> CheckResult:
    """:func:`check_config` in a forked child process, stopped after
    ``timeout`` seconds (then ``'failed'``, reason ``'timeout'``); a crash
    of the child (a segfault, memory) is a ``'failed'`` result too, so one
    config does not stop a sweep. The child inherits the parent's imports
    (no ``import mmst`` per config).

    Args:
        spec (str): ``'library::path'``.
        timeout (float): Seconds.
        **kwargs: :func:`check_config` arguments.

    Returns:
        CheckResult: The child's result.
    """
    import multiprocessing

    context = multiprocessing.get_context('fork')
    receive, send = context.Pipe(duplex=False)
    start = time.perf_counter()

    def child() -> None:
        send.send(check_config(spec, **kwargs))
        send.close()

    process = context.Process(target=child, daemon=True)
    process.start()
    send.close()
    result = None
    if receive.poll(timeout):
        try:
            result = receive.recv()
        except EOFError:
            result = None
    process.join(5)
    if process.is_alive():
        process.kill()
        process.join()
    if result is None:
        seconds = time.perf_counter() - start
        reason = (
            f'timeout: no result after {timeout:.0f} s'
            if seconds >= timeout
            else f'the check process died (exit code {process.exitcode})'
        )
        result = CheckResult(spec, reason=reason, seconds=seconds)
    return result


def sweep(
    discovered: Dict[str, List[Discovered]],
    per_library: Optional[int] = None,
    seed: int = 0,
    timeout: float = 300.0,
    log=print,
    **kwargs,
) -> Dict[str, List[Tuple[List[Discovered], CheckResult]]]:
    """:func:`check_in_child` for a seeded sample of distinct models of
    each library (:func:`sample`), one after the other.

    Args:
        discovered (dict): :func:`discover`'s result.
        per_library (int, optional): Distinct models per library; None:
            all.
        seed (int): Seed of the sample.
        timeout (float): Seconds per config.
        log (callable): Called with one line per config checked.
        **kwargs: :func:`check_config` arguments.

    Returns:
        dict: Per library, ``(group, result)`` pairs, the group's first
        config checked.
    """
    out = {}
    for library, found in discovered.items():
        out[library] = []
        for group in sample(found, per_library, seed):
            result = check_in_child(group[0].spec, timeout, **kwargs)
            out[library].append((group, result))
            log(
                f'{result.outcome:12s} {result.seconds:6.1f} s '
                f'{result.spec} {result.reason}'
            )
    return out


def _cell(text: Any) -> str:
    return str(text).replace('|', '\\|').replace('\n', ' ')


def results_markdown(
    discovered: Dict[str, List[Discovered]],
    results: Dict[str, List[Tuple[List[Discovered], CheckResult]]],
) -> str:
    """The sweep as markdown: counts per library, the checked configs
    (config, backbone, stage depths, inter-stage space size, result,
    seconds), and the refused configs with their reasons.

    Returns:
        str: Markdown, from a ``##`` heading on.
    """
    lines = ['## Counts', '']
    lines += [
        '| library | configs | kept by the text pass | ResNet family | '
        'refused | tried | distinct models tried | checked | ok |',
        '|---|---|---|---|---|---|---|---|---|',
    ]
    for library, found in discovered.items():
        family = [d for d in found if d.family]
        refused = [d for d in family if d.refusal]
        checked = results.get(library, [])
        ok = sum(r.outcome == 'ok' for _, r in checked)
        lines.append(
            f'| {library} | {len(config_files(library))} | {len(found)} | '
            f'{len(family)} | {len(refused)} | '
            f'{len(family) - len(refused)} | '
            f'{len(distinct_models(found))} | {len(checked)} | {ok} |'
        )
    lines += ['', '## Checked configs', '']
    notes: Dict[str, int] = {}
    for library, checked in results.items():
        lines += [
            f'### {library}',
            '',
            '| config | same model | backbone | stage depths | space size '
            '| result | seconds |',
            '|---|---|---|---|---|---|---|',
        ]
        for group, r in checked:
            result = r.outcome if not r.reason else f'{r.outcome}: {r.reason}'
            for note in r.notes:
                notes.setdefault(note, len(notes) + 1)
                result += f' (warning {notes[note]})'
            depths = r.stage_depths if r.stage_depths is not None else '-'
            size = r.space_size if r.space_size is not None else '-'
            lines.append(
                f'| `{group[0].spec}` | {len(group)} | '
                f'{_cell(r.backbone or group[0].backbone)} | '
                f'{_cell(depths)} | {size} | {_cell(result)} | '
                f'{r.seconds:.1f} |'
            )
        lines.append('')
    if notes:
        lines += ["mmst's warnings during the steps:", '']
        lines += [f'{n}. {_cell(note)}' for note, n in notes.items()]
        lines.append('')
    lines += ['## Refused configs', '']
    lines += ['| library | config | backbone | reason |', '|---|---|---|---|']
    for library, found in discovered.items():
        for d in found:
            if d.family and d.refusal:
                lines.append(
                    f'| {library} | `{d.spec}` | {_cell(d.backbone)} | '
                    f'{_cell(d.refusal)} |'
                )
    lines += ['', '## Other backbones', '']
    lines += [
        'Configs the text pass kept whose model has a backbone outside the '
        'ResNet family (not tried here):',
        '',
        '| library | backbone | configs |',
        '|---|---|---|',
    ]
    for library, found in discovered.items():
        counts: Dict[str, int] = {}
        for d in found:
            if not d.family:
                key = d.backbone or '(no backbone)'
                counts[key] = counts.get(key, 0) + 1
        for name, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])):
            lines.append(f'| {library} | {_cell(name)} | {n} |')
    return '\n'.join(lines) + '\n'


def versions() -> str:
    """The versions of torch, MMEngine, mmcv and the libraries, one line."""
    names = ('torch', 'mmengine', 'mmcv') + LIBRARIES
    parts = []
    for name in names:
        try:
            parts.append(f'{name} {importlib.import_module(name).__version__}')
        except ImportError:
            parts.append(f'{name} (not installed)')
    return ', '.join(parts)
