"""The depth menu: every sub-network of a trained elastic model measured on
the user's device, the Pareto frontier of metric vs cost, and the choice
of one member under a budget (``docs/depth_menu.md``, which lists the
modules).
"""

from .build import build_menu, export_member
from .frontier import (
    BudgetError,
    choose_member,
    frontier,
    member_cost,
    member_metric,
    pareto_front,
)
from .measure import CachedBatches, cache_loader
from .outputs import markdown_table, write_outputs
from .settings import (
    MENU_FORMAT,
    MenuSettings,
    MenuSettingsError,
    default_out_dir,
    load_existing,
)

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
