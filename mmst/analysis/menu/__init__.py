"""The depth menu: every sub-network of a trained elastic model measured on
the user's device, the Pareto frontier of metric vs cost, and the choice
of one member under a budget (``docs/depth_menu.md``).

- :mod:`.settings`: :class:`MenuSettings`, every setting checked once;
- :mod:`.build`: :func:`build_menu`, the sweep (one
  :func:`mmst.analysis.open_sweep`, cached batches from :mod:`.batches`,
  the units of :mod:`.measure`), rewriting ``menu.json`` after every
  finished unit (:mod:`.store`: an interrupted sweep is resumed by the
  same call, one with other settings refused), and :func:`export_member`;
- :mod:`.frontier`: :func:`pareto_front`, :func:`frontier`,
  :func:`choose_member` (pure functions of the menu dict);
- :mod:`.outputs`: ``menu.csv``, ``menu.md``, ``menu.png``
  (:func:`write_outputs`, with :mod:`mmst.analysis.report`).
"""

from .batches import CachedBatches, cache_loader
from .build import build_menu, export_member
from .frontier import (
    BudgetError,
    choose_member,
    frontier,
    member_cost,
    member_metric,
    pareto_front,
)
from .outputs import markdown_table, write_outputs
from .settings import MenuSettings, default_out_dir
from .store import MENU_FORMAT, MenuSettingsError, load_existing

__all__ = [
    'BudgetError',
    'CachedBatches',
    'MENU_FORMAT',
    'MenuSettings',
    'MenuSettingsError',
    'build_menu',
    'cache_loader',
    'choose_member',
    'default_out_dir',
    'export_member',
    'frontier',
    'load_existing',
    'markdown_table',
    'member_cost',
    'member_metric',
    'pareto_front',
    'write_outputs',
]
