"""The depth menu: every sub-network of a trained elastic model measured on
the user's device, the Pareto frontier of metric vs cost, and the choice
of one member under a budget (``docs/depth_menu.md``).

- :mod:`.settings`: :class:`MenuSettings`, every setting checked once;
- :mod:`.build`: :func:`build_menu`, the sweep (a :mod:`mmst.analysis.sweep`
  per checkpoint, cached batches from :mod:`.batches`, the units of
  :mod:`.measure`), rewriting ``menu.json`` after every finished unit
  (:mod:`.store`: an interrupted sweep is resumed by the same call, one with
  other settings refused), and :func:`export_member`;
- :mod:`.frontier`: :func:`pareto_front`, :func:`frontier`,
  :func:`choose_member` (pure functions of the menu dict);
- :mod:`.outputs`: ``menu.csv``, ``menu.md``, ``menu.png``
  (:func:`write_outputs`, with :mod:`mmst.analysis.report`).
"""

from ..report import write_json_atomic
from .batches import DEFAULT_CACHE_MB, CachedBatches, cache_loader
from .build import build_menu, export_member
from .frontier import (
    COSTS,
    RUNTIMES,
    BudgetError,
    choose_member,
    frontier,
    member_cost,
    member_metric,
    pareto_front,
)
from .outputs import markdown_table, plot, write_csv, write_outputs
from .settings import MenuSettings, default_out_dir
from .store import (
    LATENCY_WHAT,
    MENU_FILES,
    MENU_FORMAT,
    MenuSettingsError,
    config_sha256,
    file_sha256,
    load_existing,
    settings_differences,
)

__all__ = [
    'BudgetError',
    'CachedBatches',
    'COSTS',
    'DEFAULT_CACHE_MB',
    'LATENCY_WHAT',
    'MENU_FILES',
    'MENU_FORMAT',
    'MenuSettings',
    'MenuSettingsError',
    'RUNTIMES',
    'build_menu',
    'cache_loader',
    'choose_member',
    'config_sha256',
    'default_out_dir',
    'export_member',
    'file_sha256',
    'frontier',
    'load_existing',
    'markdown_table',
    'member_cost',
    'member_metric',
    'pareto_front',
    'plot',
    'settings_differences',
    'write_csv',
    'write_json_atomic',
    'write_outputs',
]
