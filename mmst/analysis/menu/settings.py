"""The settings of a depth menu, checked once (:class:`MenuSettings`), and
``menu.json``: the settings fingerprint a menu is resumed under, the resume
itself and the new menu's layout."""

import hashlib
import json
import logging
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, List, Optional, Sequence

import torch

from mmst.fileio import write_json_atomic
from mmst.subnet import parse_subnet_specs

from .. import cli
from ..cost import FLOPS_CONVENTION, onnxruntime_available, resolve_device
from ..sweep import check_bn_recal_images, check_checkpoints
from .outputs import check_runtime

#: ``menu.json`` layout version.
MENU_FORMAT = 'mmst-depth-menu/1'
#: Files a menu writes into its output folder.
MENU_FILES = ('menu.json', 'menu.csv', 'menu.md', 'menu.png')
#: What the latency columns time.
LATENCY_WHAT = (
    "one model(inputs, data_samples, mode='tensor') call on a preprocessed "
    'batch (the first batch of the evaluation split repeated to the batch '
    'size), no data loading, preprocessing or post-processing; eval mode, '
    'no autograd; median and interquartile range of the timed repeats '
    'after the warm-up runs'
)
#: Default budget for caching the evaluation batches in memory.
DEFAULT_CACHE_MB = 4096
#: The :class:`MenuSettings` a menu's numbers depend on, as given.
_SETTINGS = (
    'space split max_images metric bn_recal_images seed batch_sizes warmup '
    'repeats'
).split()
_WARMUP = 'warmup >= 0, repeats >= 1'


def _checkpoint(label: str, path: str, **more) -> dict:
    return dict(label=label, path=osp.abspath(path), **more)


class MenuSettingsError(ValueError):
    """An existing ``menu.json`` was made with other settings."""


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes (hex)."""
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


def _stable(obj: Any) -> Any:
    """A JSON-able, run-independent form of a config value."""
    if isinstance(obj, dict):
        return {str(k): _stable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_stable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, type) or callable(obj):
        module = getattr(obj, '__module__', '')
        name = getattr(obj, '__qualname__', type(obj).__name__)
        return f'{module}.{name}'
    return repr(obj)


def config_sha256(cfg) -> str:
    """SHA-256 of a (merged) config's content: changes with the config
    file, its ``_base_`` files and ``--cfg-options``."""
    text = json.dumps(_stable(cfg.to_dict()), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(st, cfg, subnets: list, machine: dict) -> dict:
    """What a menu is resumed under: the settings ``st`` that change a
    number, the config's and checkpoints' SHA-256, the members and the
    machine's CPU (or GPU)."""
    device = st.torch_device
    return dict(
        config=osp.abspath(st.config),
        config_sha256=config_sha256(cfg),
        cfg_options=_stable(dict(st.cfg_options or {})),
        checkpoints=[
            _checkpoint(lb, p, size=osp.getsize(p), sha256=file_sha256(p))
            for lb, p in zip(st.labels, st.checkpoints)
        ],
        subnets=[[len(s) for s in sub] for sub in subnets],
        **{k: getattr(st, k) for k in _SETTINGS},
        device=str(device),
        threads=machine['torch_threads'],
        onnxruntime=bool(st.ort),
        machine=machine['cpu'] if device.type == 'cpu' else machine.get('gpu'),
        # recorded only when non-strict: strict menus keep their settings
        **({} if st.strict else dict(strict=False)),
    )


def new_menu(st, settings: dict, machine: dict, space) -> dict:
    """An empty menu of settings ``st`` (``settings``: its
    :func:`fingerprint`) over ``space``."""
    return dict(
        format=MENU_FORMAT,
        settings=settings,
        machine=machine,
        config=osp.abspath(st.config),
        metric=None,
        flops_convention=FLOPS_CONVENTION,
        latency_batch_size=st.latency_batch_size,
        latency_what=LATENCY_WHAT,
        checkpoints=list(map(_checkpoint, st.labels, st.checkpoints)),
        space=dict(
            stage_depths=space.stage_depths,
            depth_choices=space.depth_choices,
            preset=st.space,
        ),
        members=[],
        complete=False,
        runs=[],
    )


def _refuse(what: str) -> MenuSettingsError:
    return MenuSettingsError(
        f'{what}; pass --force to overwrite or choose another --out-dir'
    )


def load_existing(
    out_dir: str, settings: dict, force: bool = False
) -> Optional[dict]:
    """The menu in ``out_dir`` to resume (its settings equal
    ``settings``); None if none, ``force``, or other settings but no
    finished unit (nothing lost by starting again).

    Raises:
        MenuSettingsError: Not ``force``, and ``menu.json`` is no menu,
            or has other settings and finished units, or other menu files
            exist without it.
    """
    path = osp.join(out_dir, 'menu.json')
    others = [f for f in MENU_FILES[1:] if osp.exists(osp.join(out_dir, f))]
    if force or not (osp.exists(path) or others):
        return None
    if not osp.exists(path):
        raise _refuse(f'{out_dir} holds {", ".join(others)} but no menu.json')
    with open(path) as f:
        try:
            menu = json.load(f)
        except json.JSONDecodeError as e:
            raise _refuse(f'{path} is not a menu ({e})') from None
    if menu.get('format') != MENU_FORMAT:
        raise _refuse(
            f'{path} has format={menu.get("format")!r}, not {MENU_FORMAT!r}'
        )
    old = menu.get('settings', {})
    diffs = [
        f'{k}: {old.get(k)!r} (menu.json) vs {settings.get(k)!r} (now)'
        for k in sorted(set(old) | set(settings))
        if old.get(k) != settings.get(k)
    ]
    finished = any(
        m.get('latency') is not None or m.get('results')
        for m in menu.get('members', [])
    )
    if diffs and not finished:  # nothing to lose: e.g. a run that crashed
        logging.getLogger(__name__).warning(
            f'{path} holds no finished unit; starting again with the new '
            f'settings ({"; ".join(diffs)})'
        )
        return None
    if diffs:
        raise MenuSettingsError(
            f'{path} was made with other settings, so it cannot be '
            'resumed: ' + '; '.join(diffs) + '. Pass --force to restart '
            'it or choose another --out-dir'
        )
    return menu


def save(menu: dict, out_dir: str) -> None:
    """Write ``out_dir/menu.json`` atomically."""
    write_json_atomic(menu, osp.join(out_dir, 'menu.json'), indent=1)


def default_out_dir(config: str) -> str:
    """``work_dirs/depth_menu/<config name>``."""
    return cli.default_out_dir('depth_menu', config)


@dataclass
class MenuSettings:
    """What :func:`mmst.analysis.build_menu` measures, and how, checked on
    construction: ``depth_menu.py``'s options (``docs/depth_menu.md``);
    the evaluation ones as in :func:`mmst.analysis.run_loafing`.
    ``batch_sizes``: of the latency; the frontier and the budget use
    ``latency_batch_size``'s (default: the first) of ``latency_runtime``
    (``'eager'`` | ``'onnxruntime'``); ``warmup`` untimed, then
    ``repeats`` timed runs; ``device``: ``'cpu'`` | ``'cuda[:N]'``
    (checked: ``torch_device``); ``threads``: ``torch.set_num_threads``;
    ``ort``: also time ONNX Runtime (None: when installed and on the CPU);
    ``out_dir``: default :func:`default_out_dir`; ``force``: restart, not
    resume / refuse; ``progress``: a tqdm bar; ``cache_mb``: MiB the
    cached evaluation batches may take.

    Raises:
        ValueError: An invalid setting (named, with the allowed values).
        CheckpointError: A checkpoint is unreadable.
    """

    config: str
    checkpoints: Sequence[str]
    labels: Optional[Sequence[str]] = None
    subnets: Sequence = ('all',)
    space: Optional[str] = None
    bn_recal_images: int = 2000
    split: str = 'val'
    metric: Optional[str] = None
    max_images: Optional[int] = None
    seed: int = 0
    batch_sizes: Sequence[int] = (1,)
    latency_batch_size: Optional[int] = None
    latency_runtime: str = 'eager'
    warmup: int = 5
    repeats: int = 30
    device: str = 'cpu'
    threads: Optional[int] = None
    ort: Optional[bool] = None
    cfg_options: Optional[dict] = None
    out_dir: Optional[str] = None
    force: bool = False
    progress: bool = True
    cache_mb: float = DEFAULT_CACHE_MB
    strict: bool = True
    torch_device: torch.device = field(init=False, repr=False)
    specs: List = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.checkpoints, self.labels = check_checkpoints(
            self.checkpoints, self.labels
        )
        bs = self.batch_sizes = [int(b) for b in self.batch_sizes]
        if self.latency_batch_size is None and bs:
            self.latency_batch_size = bs[0]
        lbs = self.latency_batch_size
        w, r, t = self.warmup, self.repeats, self.threads
        one_of = 'one of --batch-sizes ' + ' | '.join(map(str, bs))
        check_bn_recal_images(self.bn_recal_images)
        _check_all(  # (allowed?, option and value, what is allowed)
            (bs and min(bs) >= 1, f'--batch-sizes {bs}', 'integers >= 1'),
            (len(set(bs)) == len(bs), f'--batch-sizes {bs}', 'distinct sizes'),
            (lbs in bs, f'--latency-batch-size {lbs}', one_of),
            (w >= 0 and r >= 1, f'--warmup {w} / --repeats {r}', _WARMUP),
            (t is None or t >= 1, f'--threads {t}', '>= 1'),
        )
        self.torch_device = resolve_device(self.device)
        installed = onnxruntime_available()
        if self.ort is None:
            self.ort = installed and self.torch_device.type == 'cpu'
        if self.ort and not installed:
            raise ValueError(
                '--onnxruntime needs the onnx and onnxruntime packages (pip '
                'install onnx onnxruntime); they are not installed'
            )
        check_runtime(self.latency_runtime)  # onnxruntime: needs ort
        if self.latency_runtime == 'onnxruntime' and not self.ort:
            raise ValueError(
                '--latency-runtime onnxruntime needs the ONNX Runtime '
                'latency (--onnxruntime: onnx and onnxruntime installed, '
                'device cpu)'
            )
        self.specs = parse_subnet_specs(self.subnets)
        self.out_dir = self.out_dir or default_out_dir(self.config)


def _check_all(*checks) -> None:
    """A ValueError for the first ``(allowed, given, what is allowed)``
    that is not allowed."""
    for ok, given, allowed in checks:
        if not ok:
            raise ValueError(f'{given} is invalid; allowed: {allowed}')
