"""Resuming with the model the run started with.

A checkpoint that MMEngine's ``Runner.save_checkpoint`` wrote holds the
run's whole config as text (``meta['cfg']``, ``Config.pretty_text``).
``--resume`` with another model config (``num_subnets`` 3 -> 1, another
sub-network space) used to load the weights and go on silently, training
another method than the one the run started. :func:`check_resume_model`
compares the ``model`` section of the checkpoint's config with the current
one and refuses a difference, unless told to allow it (then it logs the
differences as a warning). The stored text is read as literals, never
executed (a checkpoint may come from anyone).

Only ``model`` is compared: the schedule, the data, ``--no-validate`` and
``--cfg-options`` on other keys may change between the two runs.
``init_cfg`` (and the old-style ``pretrained``) anywhere in the model is
left out: resuming loads the checkpoint's weights over whatever they load.
"""

import ast
import logging
import os
from typing import Any, Dict, List, Mapping, Union

import torch
from mmengine.config import Config
from mmengine.logging import print_log

#: Keys whose values do not change the resumed model (the checkpoint's
#: weights replace what they would load); left out of the comparison.
IGNORED_KEYS = ('init_cfg', 'pretrained')
#: How many differences an error or warning lists before "(+N more)".
MAX_LISTED = 5
#: Marks a key that one of the two configs does not have.
ABSENT = '(absent)'


class ResumeModelError(ValueError):
    """The checkpoint to resume was trained with another model config."""


def _literal(node: ast.AST) -> Any:
    """The value of a literal expression of a config text: constants,
    lists, tuples, sets, dicts, ``dict(key=...)`` calls, signs and
    ``inf`` / ``nan``; anything else is refused (never evaluated)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = [_literal(e) for e in node.elts]
        kind = {ast.List: list, ast.Tuple: tuple, ast.Set: set}
        return kind[type(node)](items)
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {
            _literal(k): _literal(v) for k, v in zip(node.keys, node.values)
        }
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == 'dict'
        and not node.args
        and all(k.arg is not None for k in node.keywords)
    ):
        return {k.arg: _literal(k.value) for k in node.keywords}
    if isinstance(node, ast.UnaryOp) and isinstance(
        node.op, (ast.USub, ast.UAdd)
    ):
        value = _literal(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Name) and node.id in ('inf', 'nan'):
        return float(node.id)
    raise ValueError(
        f'line {getattr(node, "lineno", "?")}: {ast.dump(node)[:80]} is '
        'not a literal'
    )


def parse_model_section(text: str) -> Dict[str, Any]:
    """The ``model = ...`` assignment of a config text
    (``Config.pretty_text``, as ``meta['cfg']`` of a checkpoint holds it),
    read as a literal: the text comes from a checkpoint file and is never
    executed (``Config.fromstring`` would run it as Python, imports and
    ``custom_imports`` included).

    Returns:
        dict: The model section; ``{}`` when the text assigns no model.

    Raises:
        ValueError: The text is not Python, or the model is not a literal.
    """
    tree = ast.parse(text)
    model: Dict[str, Any] = {}
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stmt.targets[0].id == 'model'
        ):
            model = _literal(stmt.value)
    if not isinstance(model, dict):
        raise ValueError(f'model={model!r} is not a dict')
    return model


def _model_section(cfg: Union[str, Config, Mapping]) -> Dict[str, Any]:
    """The ``model`` section of a config: a text is read as a literal
    (:func:`parse_model_section`); a Config or dict goes through the same
    pretty-text round trip, so that both sides of a comparison hold the
    same kinds of values (dicts, tuples, classes by their printed name),
    or is taken as it is when it has values a text cannot hold."""
    if isinstance(cfg, str):
        return parse_model_section(cfg)
    model = cfg.get('model')
    if model is None:
        return {}
    try:
        return parse_model_section(Config(dict(model=model)).pretty_text)
    except Exception:
        return Config(dict(model=model)).to_dict()['model']


def _flatten(value: Any, path: str, out: Dict[str, Any]) -> None:
    """Dotted paths -> leaf values; lists and tuples alike (``[1, 2]``
    equals ``(1, 2)``), indices as ``[i]``; :data:`IGNORED_KEYS` left out."""
    if isinstance(value, Mapping):
        if not value:
            out[path] = {}
        for key, item in value.items():
            if key in IGNORED_KEYS:
                continue
            _flatten(item, f'{path}.{key}', out)
    elif isinstance(value, (list, tuple)):
        if not value:
            out[path] = []
        for i, item in enumerate(value):
            _flatten(item, f'{path}[{i}]', out)
    else:
        out[path] = value


def _same(a: Any, b: Any) -> bool:
    """Equal values; a bool equals only a bool (``True == 1`` in Python),
    an int equals a float of the same value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
        return type(a) is type(b) and a == b  # empty containers
    return a == b


def _short(value: Any) -> str:
    text = repr(value) if value is not ABSENT else ABSENT
    return text if len(text) <= 60 else text[:57] + '...'


def model_config_diff(
    old_cfg: Union[str, Config, Mapping], new_cfg: Union[str, Config, Mapping]
) -> List[str]:
    """The differences between the ``model`` sections of two configs.

    Args:
        old_cfg (str | Config | dict): The config the checkpoint was
            trained with: the text of ``meta['cfg']`` (its model read as a
            literal, :func:`parse_model_section`), a Config or a dict.
        new_cfg (str | Config | dict): The current config.

    Raises:
        ValueError: A config text whose model is not a literal.

    Returns:
        list[str]: One line per differing leaf, ``model.num_subnets: 3 ->
        1``, ``model.space.depths[0][1]: 2 -> (absent)``, in the order of
        the keys (the old config's first); empty when the models are the
        same. Lists equal tuples; :data:`IGNORED_KEYS` are left out.
    """
    old: Dict[str, Any] = {}
    new: Dict[str, Any] = {}
    _flatten(_model_section(old_cfg), 'model', old)
    _flatten(_model_section(new_cfg), 'model', new)
    lines = []
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key, ABSENT), new.get(key, ABSENT)
        if a is ABSENT or b is ABSENT or not _same(a, b):
            lines.append(f'{key}: {_short(a)} -> {_short(b)}')
    return lines


def _listed(lines: List[str]) -> str:
    shown = '; '.join(lines[:MAX_LISTED])
    more = len(lines) - MAX_LISTED
    return shown + (f'; ... (+{more} more)' if more > 0 else '')


def read_checkpoint_meta(path: str) -> Dict[str, Any]:
    """The ``meta`` dict of an MMEngine checkpoint file (memory-mapped:
    the tensors are not read; weights-only unpickling, with the globals
    ``import mmst`` allow-lists for MMEngine checkpoints).

    Raises:
        FileNotFoundError: No such file, or an empty path (an empty
            ``last_checkpoint``).
        Exception: torch's error for a file it cannot load.
    """
    if not path:
        raise FileNotFoundError(
            "--resume: the checkpoint path is empty (is the work dir's "
            'last_checkpoint file empty?)'
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f'--resume: the checkpoint {path} does not exist (or is not a '
            'file)'
        )
    try:
        checkpoint = torch.load(
            path, map_location='cpu', mmap=True, weights_only=True
        )
    except RuntimeError as e:
        if 'mmap' not in str(e):
            raise
        checkpoint = torch.load(  # the legacy (not zip) format
            path, map_location='cpu', weights_only=True
        )
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    return meta if isinstance(meta, dict) else {}


def check_resume_model(
    checkpoint: Union[None, str, os.PathLike, Mapping],
    cfg: Config,
    allow_change: bool = False,
) -> List[str]:
    """Refuse to resume ``checkpoint`` with a ``cfg`` whose ``model``
    section differs from the one the checkpoint was trained with.

    Call it before the Runner is built (``tools/train.py`` does, with
    ``--resume``), so that nothing is written when it refuses.

    Args:
        checkpoint (str | PathLike | dict | None): The checkpoint the run
            will resume (a local path), or its ``meta`` dict; None: nothing
            to resume (MMEngine starts from scratch), nothing is checked.
        cfg (Config): The current config (after ``--cfg-options``).
        allow_change (bool): Resume anyway: the differences are logged as
            a warning (``tools/train.py --resume-model-change``). Defaults
            to False.

    Returns:
        list[str]: The differences (:func:`model_config_diff`), empty when
        the models are the same, or when the checkpoint holds no config to
        compare with (a warning says so).

    Raises:
        ResumeModelError: The models differ and ``allow_change`` is False;
            the message names the checkpoint, the number of differing keys
            and the first :data:`MAX_LISTED` of them (``model.num_subnets:
            3 -> 1``).
        FileNotFoundError: ``checkpoint`` is a local path that does not
            exist.
    """
    if checkpoint is None:
        return []
    if isinstance(checkpoint, Mapping):
        meta, name = checkpoint, 'the checkpoint'
    else:
        name = os.fspath(checkpoint)
        if '://' in name:  # a remote backend: MMEngine reads it
            print_log(
                f'--resume: {name} is not a local file; its model config '
                'is not compared with the current one',
                'current',
                logging.WARNING,
            )
            return []
        try:
            meta = read_checkpoint_meta(name)
        except FileNotFoundError:
            raise
        except Exception as e:
            print_log(
                f'--resume: {name} cannot be read to compare its model '
                f'config with the current one ({type(e).__name__}: '
                f'{str(e)[:200]})',
                'current',
                logging.WARNING,
            )
            return []
    old_text = meta.get('cfg')
    if not isinstance(old_text, str):
        print_log(
            f'--resume: {name} holds no config (meta["cfg"]; it was not '
            "saved by MMEngine's Runner): the model config it was trained "
            'with cannot be compared with the current one',
            'current',
            logging.WARNING,
        )
        return []
    try:
        diff = model_config_diff(old_text, cfg)
    except Exception as e:  # not a config text of literals
        print_log(
            f'--resume: the config stored in {name} cannot be parsed '
            f'({type(e).__name__}: {str(e)[:200]}); the model config is '
            'not compared with the current one',
            'current',
            logging.WARNING,
        )
        return []
    if not diff:
        return []
    what = (
        f'the model config differs from the one {name} was trained with '
        f'({len(diff)} key(s), checkpoint -> now): {_listed(diff)}'
    )
    if not allow_change:
        raise ResumeModelError(
            f'--resume: {what}; resume with the config the run started '
            'with, or allow the change explicitly (tools/train.py '
            '--resume-model-change; the checkpoint weights are loaded '
            'into the new model)'
        )
    print_log(
        f'--resume-model-change: {what}; resuming anyway',
        'current',
        logging.WARNING,
    )
    return diff
