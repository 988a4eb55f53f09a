"""The sub-network space: which blocks of each residual stage a sub-network
keeps, the presets of the papers, and seeded sampling."""

import itertools
import random
from typing import Dict, List, Optional, Sequence, Tuple, Union

from mmst.settings import SettingError, invalid

# A sub-network: per stage, the indices of the blocks it keeps (sorted).
Subnet = Tuple[Tuple[int, ...], ...]

# Per stage, how many trailing blocks may be dropped + 1 ("m" in
# docs/method.md): a stage of n blocks keeps k in {n - m + 1, ..., n}.
# Defined for ResNet-50.
RESNET50_PRESETS: Dict[str, List[int]] = {
    'space1': [2, 3, 5, 2],
    'space2': [2, 3, 6, 3],
    'space3': [1, 2, 4, 1],  # ST++ best ("InterSSR")
    'space4': [1, 2, 5, 2],
    'space5': [1, 1, 3, 1],
    'space6': [1, 2, 4, 2],
    'space7': [1, 3, 5, 1],
}
RESNET50_STAGES = [3, 4, 6, 3]
#: The ST++ inter-stage sampling rule as a preset for any stage depths.
INTER_STAGE = 'inter-stage'
PRESETS = ('default', INTER_STAGE) + tuple(RESNET50_PRESETS)
SAMPLING_MODES = ('ordered', 'stochastic')


def _error(key: str, value, allowed: str) -> SettingError:
    """``<key>=<value> is invalid; allowed: ...``, the key relative to the
    space's config (``space`` of ``mmst.StimulativeTraining``, which puts
    its own key in front)."""
    return invalid(key, value, allowed)


def inter_stage_depths(stage_depths: Sequence[int]) -> List[List[int]]:
    """The depths each stage may keep under ST++'s inter-stage sampling
    rule ("InterSSR", ST++ Sec. 3.3.3: sample the stages that have more
    layers, and keep the first several layers of every stage), for any
    stage depths.

    Every stage keeps at least ``b`` blocks, ``b`` the shortest stage's
    length: stages of that length are never cut, longer stages keep
    ``b .. n`` blocks. When all stages are equally long (no stage has more
    layers), ``b`` is half a stage, rounded up. On ResNet-50's
    ``[3, 4, 6, 3]`` this is the paper's best space, ``space3``
    (``{3}, {3, 4}, {3..6}, {3}``).

    Args:
        stage_depths (Sequence[int]): Blocks per stage, e.g. ``[2, 2, 2, 2]``
            (ResNet-18) -> ``[[1, 2]] * 4``; ``[3, 4, 23, 3]`` (ResNet-101)
            -> ``[[3], [3, 4], [3, ..., 23], [3]]``.

    Returns:
        list[list[int]]: Per stage, the allowed depths, ascending.
    """
    shortest = min(stage_depths)
    keep = shortest
    if all(n == shortest for n in stage_depths):
        keep = (shortest + 1) // 2
    return [list(range(min(keep, n), n + 1)) for n in stage_depths]


class SubnetSpace:
    """Per-stage depth choices of the sub-networks of a residual network.

    Ordered residual sampling (the default) keeps the first ``k_i`` blocks
    of stage ``i``; each ``k_i`` is drawn independently and uniformly from
    its stage's allowed depths. Stochastic residual sampling (an ablation of
    the paper) keeps the first block of each stage and ``k_i - 1`` others
    drawn at random.

    Args:
        stage_depths (Sequence[int]): Number of blocks of each stage of the
            backbone, e.g. ``[3, 4, 6, 3]`` for ResNet-50.
        depths (str | Sequence[Sequence[int]]): A preset name (``'default'``:
            every depth from 1 to the stage's length; ``'inter-stage'``:
            ST++'s inter-stage rule for any stage depths,
            :func:`inter_stage_depths`; ``'space1'`` ... ``'space7'``: the
            ResNet-50 spaces of the ST++ paper) or, per stage, the list of
            depths allowed. Defaults to ``'default'``.
        mode (str): ``'ordered'`` or ``'stochastic'``.
    """

    def __init__(
        self,
        stage_depths: Sequence[int],
        depths: Union[str, Sequence[Sequence[int]]] = 'default',
        mode: str = 'ordered',
    ) -> None:
        stage_depths = [int(n) for n in stage_depths]
        if not stage_depths or min(stage_depths) < 1:
            raise _error(
                'stage_depths',
                stage_depths,
                'a non-empty list of positive block counts',
            )
        if mode not in SAMPLING_MODES:
            raise _error('mode', mode, ' | '.join(SAMPLING_MODES))
        self.stage_depths = stage_depths
        self.mode = mode
        self.depth_choices = self._resolve(depths, stage_depths)

    @staticmethod
    def _resolve(depths, stage_depths: List[int]) -> List[List[int]]:
        if isinstance(depths, str):
            if depths == 'default':
                return [list(range(1, n + 1)) for n in stage_depths]
            if depths == INTER_STAGE:
                return inter_stage_depths(stage_depths)
            if depths not in RESNET50_PRESETS:
                raise _error(
                    'depths',
                    depths,
                    ' | '.join(PRESETS) + ' or per-stage lists',
                )
            if stage_depths != RESNET50_STAGES:
                raise _error(
                    'depths',
                    depths,
                    f'{depths!r} is defined for the ResNet-50 stages '
                    f'{RESNET50_STAGES}, this backbone has {stage_depths}: '
                    f"'{INTER_STAGE}' (ST++'s rule for any stages; space3 "
                    "on ResNet-50), 'default' or per-stage depth lists",
                )
            return [
                list(range(n - m + 1, n + 1))
                for n, m in zip(stage_depths, RESNET50_PRESETS[depths])
            ]
        depths = [
            list(d) if isinstance(d, (list, tuple)) else d for d in depths
        ]
        if len(depths) != len(stage_depths):
            raise _error(
                'depths',
                depths,
                f'one list per stage ({len(stage_depths)} stages '
                f'of {stage_depths} blocks)',
            )
        resolved = []
        for i, (choices, n) in enumerate(zip(depths, stage_depths)):
            if not isinstance(choices, list) or not choices:
                raise _error(
                    f'depths[{i}]',
                    choices,
                    f'a non-empty list of depths in 1..{n}',
                )
            bad = [
                k
                for k in choices
                if isinstance(k, bool)
                or not isinstance(k, int)
                or not 1 <= k <= n
            ]
            if bad:
                raise _error(
                    f'depths[{i}]',
                    choices,
                    f'depths in 1..{n} (stage {i} has {n} blocks)',
                )
            resolved.append(sorted(set(choices)))
        return resolved

    # -- members --------------------------------------------------------
    def subnet_from_depths(self, depths: Sequence[int]) -> Subnet:
        """The ordered sub-network keeping the first ``depths[i]`` blocks."""
        depths = check_depths(list(depths), self.stage_depths)
        return tuple(tuple(range(k)) for k in depths)

    def members(self) -> List[Subnet]:
        """All ordered sub-networks of the space, smallest first."""
        return [
            self.subnet_from_depths(ks)
            for ks in itertools.product(*self.depth_choices)
        ]

    def __len__(self) -> int:
        count = 1
        for choices in self.depth_choices:
            count *= len(choices)
        return count

    def largest(self) -> Subnet:
        return self.subnet_from_depths([max(c) for c in self.depth_choices])

    def smallest(self) -> Subnet:
        return self.subnet_from_depths([min(c) for c in self.depth_choices])

    def full(self) -> Subnet:
        return self.subnet_from_depths(self.stage_depths)

    # -- sampling -------------------------------------------------------
    def sample(self, rng: random.Random) -> Subnet:
        """Draw one sub-network with the given generator."""
        subnet = []
        for choices, n in zip(self.depth_choices, self.stage_depths):
            k = rng.choice(choices)
            if self.mode == 'ordered':
                subnet.append(tuple(range(k)))
            else:
                others = sorted(rng.sample(range(1, n), k - 1))
                subnet.append(tuple([0] + others))
        return tuple(subnet)

    @staticmethod
    def rng_for(
        seed: Optional[int], iteration: int, pass_index: int = 0
    ) -> random.Random:
        """A generator determined by the run's seed, the iteration and the
        sub-network pass: every rank draws the same sub-network at the same
        step, and a resumed run continues the same sequence."""
        return random.Random(f'mmst-{seed}-{iteration}-{pass_index}')

    def __repr__(self) -> str:
        return (
            f'SubnetSpace(stage_depths={self.stage_depths}, '
            f'depth_choices={self.depth_choices}, mode={self.mode!r})'
        )


def subnet_depths(subnet: Subnet) -> List[int]:
    """The number of blocks kept per stage."""
    return [len(s) for s in subnet]


#: What a depth list may hold (the end of every depth-list error).
DEPTHS_ALLOWED = 'one integer depth per stage, 1 <= depth <= the stage length'


def check_depths(
    depths,
    stage_depths: Sequence[int],
    key: str = 'subnet',
    shown: Optional[str] = None,
) -> List[int]:
    """The one check of a depth list (blocks kept per stage, the first
    ones) against a backbone's stages, for every config key, tool option
    and backbone.

    Args:
        depths (Sequence[int]): Blocks kept per stage, e.g. ``[2, 3, 5, 2]``.
        stage_depths (Sequence[int]): Blocks per stage of the backbone.
        key (str): The setting or option, for the message (``'subnet'``,
            ``'--subnet'``, ``'val_cfg.subnets'`` ...).
        shown (str, optional): How the value follows the key in the message
            (default ``'=<value!r>'``; e.g. ``' entry 1,2,4'``).

    Returns:
        list[int]: ``depths`` as a list.

    Raises:
        SettingError: Not one integer per stage within ``1..length``: the
            message names the key, the value, the stages, what is allowed
            and the first fault, e.g. ``subnet=[1, 2, 4] is invalid for
            stage depths [3, 3, 3]; allowed: one integer depth per stage,
            1 <= depth <= the stage length; got stage 3 keeping 4 blocks``.
    """
    stage_depths = list(stage_depths)
    items = list(depths) if isinstance(depths, (list, tuple)) else None
    why = None
    if items is None:
        why = f'a {type(depths).__name__}, not a list'
    elif len(items) != len(stage_depths):
        why = f'{len(items)} values for {len(stage_depths)} stages'
    else:
        for i, (k, n) in enumerate(zip(items, stage_depths)):
            if isinstance(k, bool) or not isinstance(k, int):
                why = f'stage {i + 1} keeping {k!r} (not an integer)'
                break
            if not 1 <= k <= n:
                why = f'stage {i + 1} keeping {k} blocks (1..{n})'
                break
    if why is not None:
        raise SettingError(
            key,
            (f'={depths!r}' if shown is None else shown)
            + f' is invalid for stage depths {stage_depths}; allowed: '
            f'{DEPTHS_ALLOWED}; got {why}',
        )
    return items


def resolve_subnet_depths(
    subnet, space: 'SubnetSpace', key: str = '--subnet'
) -> List[int]:
    """One sub-network (for export) -> the blocks it keeps per stage.

    Unlike :func:`subnet_depths` (which counts the blocks of a
    :data:`Subnet`), this takes any form a user gives one sub-network in.

    Args:
        subnet (str | Sequence | Subnet): ``'smallest' | 'largest' |
            'full'`` (of ``space``), blocks kept per stage (``'1,2,3'`` or
            ``[1, 2, 3]``), or a :data:`Subnet` (kept indices per stage;
            ordered ones only: the first blocks of each stage).
        space (SubnetSpace): The model's space.
        key (str): The option, for error messages.

    Returns:
        list[int]: Blocks kept per stage.

    Raises:
        ValueError: ``'all'``, an invalid spec, a non-ordered sub-network,
            or depths that do not fit the stages (:func:`check_depths`; the
            message names ``key``, the value and what is allowed).
    """
    if (
        isinstance(subnet, (list, tuple))
        and subnet
        and all(isinstance(s, (list, tuple)) for s in subnet)
    ):
        if any(tuple(s) != tuple(range(len(s))) for s in subnet):
            raise ValueError(
                f'{key}={subnet!r} is invalid: only ordered sub-networks '
                '(the first k blocks of each stage) can be exported'
            )
        subnet = [len(s) for s in subnet]
    spec = parse_subnet_spec(subnet, key)
    if spec == 'all':
        raise ValueError(
            f"{key}='all' is invalid here; allowed: one sub-network "
            "('smallest' | 'largest' | 'full' or blocks kept per stage, "
            'e.g. 1,2,3)'
        )
    if isinstance(spec, str):
        return subnet_depths(getattr(space, spec)())
    return check_depths(
        spec, space.stage_depths, key, f'={",".join(map(str, spec))}'
    )


def format_subnet(subnet: Subnet) -> str:
    """A short name, e.g. ``[1,2,4,1]`` (ordered) or ``[(0,2),(0,1)]``."""
    if all(s == tuple(range(len(s))) for s in subnet):
        return '[' + ','.join(str(len(s)) for s in subnet) + ']'
    return (
        '[' + ','.join('(' + ','.join(map(str, s)) + ')' for s in subnet) + ']'
    )


# -- sub-network specs: one parser / validator for every tool and loop -----
#: Names a spec may take: every member of the space, its smallest / largest
#: member, or the full depth of the backbone.
NAMED_SUBNETS = ('all', 'smallest', 'largest', 'full')
#: A spec: one of :data:`NAMED_SUBNETS`, or the blocks kept per stage.
SubnetSpec = Union[str, List[int]]
_SPEC_FORMS = (
    ' | '.join(NAMED_SUBNETS) + ' or the blocks kept per stage, e.g. 1,2,3 '
    '(a string; brackets and spaces are ignored) or [1, 2, 3]'
)


def _spec_error(key: str, value) -> SettingError:
    return SettingError(
        key, f' entry {value!r} is invalid; allowed: {_SPEC_FORMS}'
    )


def parse_subnet_spec(value, key: str = 'subnets') -> SubnetSpec:
    """One sub-network spec -> a name or a list of blocks kept per stage.

    Args:
        value (str | Sequence[int]): A name (``'all' | 'smallest' |
            'largest' | 'full'``), comma-separated blocks kept per stage
            (``'1,2,3'``, ``'[1, 2, 3]'``: brackets and spaces are
            ignored) or a sequence of positive ints (``[1, 2, 3]``).
        key (str): The option being parsed, for the error message (e.g.
            ``'--subnets'``, ``'val_cfg.subnets'``).

    Returns:
        str | list[int]: The name, or the depths.

    Raises:
        ValueError: Anything else; the message names ``key``, the value and
            the allowed forms.
    """
    if isinstance(value, str):
        text = value.strip()
        if text in NAMED_SUBNETS:
            return text
        parts = text.strip('[]() ').replace(' ', '').split(',')
        try:
            depths = [int(p) for p in parts]
        except ValueError:
            raise _spec_error(key, value) from None
    elif isinstance(value, (list, tuple)):
        depths = list(value)
    else:
        raise _spec_error(key, value)
    if not depths or any(
        isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in depths
    ):
        raise _spec_error(key, value)
    return depths


def parse_subnet_specs(
    values: Union[str, Sequence],
    key: str = '--subnets',
    allow_empty: bool = False,
) -> List[SubnetSpec]:
    """Sub-network specs (command-line strings or config values) ->
    names and depth lists for :func:`resolve_subnets`.

    ``['all']`` -> ``['all']``; ``['smallest', '1,2,3', [2, 2, 2]]`` ->
    ``['smallest', [1, 2, 3], [2, 2, 2]]``. A single string is one spec.
    Used by ``SubnetValLoop`` (``subnets``), ``loafing.py``,
    ``logit_magnitude.py``, ``extract_subnet.py`` and the depth menu.

    Args:
        values (str | Sequence): Specs, see :func:`parse_subnet_spec`.
        key (str): The option, for error messages.
        allow_empty (bool): Accept an empty list (``SubnetValLoop``:
            validate the main network only). Defaults to False.

    Returns:
        list: Names and depth lists, in the given order.

    Raises:
        ValueError: An invalid entry, or no entry at all (the message names
            ``key``, the value and the allowed forms).
    """
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)) or not (values or allow_empty):
        raise invalid(
            key, values, f'a non-empty list of specs, each {_SPEC_FORMS}'
        )
    return [parse_subnet_spec(v, key) for v in values]


def resolve_subnets(
    specs: Union[str, Sequence],
    space: SubnetSpace,
    key: str = 'subnets',
    allow_empty: bool = True,
) -> List[Subnet]:
    """Turn specs (``'smallest' | 'largest' | 'full' | 'all' | [k1, k2,
    ...]`` or their command-line strings) into sub-networks of ``space``,
    without duplicates, in the given order (``'all'``: the members of the
    space, smallest first).

    A depth list is checked against the backbone's stages (one value per
    stage, ``1 <= k_i <= stage length``), not against the space's depth
    choices: any ordered sub-network of the backbone can be evaluated.

    Args:
        specs (str | Sequence): See :func:`parse_subnet_specs`.
        space (SubnetSpace): The space (its ``stage_depths`` and members).
        key (str): The option, for error messages.
        allow_empty (bool): Accept an empty list (no sub-networks).
            Defaults to True.

    Returns:
        list[Subnet]: Per sub-network, the indices kept per stage.

    Raises:
        ValueError: An invalid spec, or a depth list that does not fit the
            stages (the message names ``key``, the value and the stages).
    """
    subnets: List[Subnet] = []
    for spec in parse_subnet_specs(specs, key, allow_empty):
        if spec == 'all':
            subnets += space.members()
        elif isinstance(spec, str):
            subnets.append(getattr(space, spec)())
        else:
            check_depths(
                spec,
                space.stage_depths,
                key,
                f' entry {",".join(map(str, spec))}',
            )
            subnets.append(space.subnet_from_depths(spec))
    unique: List[Subnet] = []
    for s in subnets:
        if s not in unique:
            unique.append(s)
    return unique
