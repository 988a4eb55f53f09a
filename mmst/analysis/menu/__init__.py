"""The depth menu: every sub-network of a trained elastic model measured on
the user's device, the Pareto frontier of metric vs cost, and the choice
of one member under a budget (``docs/depth_menu.md``, which lists the
modules). Its names are imported from their module on first use (PEP 562).
"""

from ...utils import lazy_getattr

_NAMES = {
    'build': 'build_menu export_member',
    'measure': 'CachedBatches cache_loader',
    'outputs': 'BudgetError choose_member frontier markdown_table '
    'member_cost member_metric pareto_front write_outputs',
    'settings': 'MENU_FORMAT MenuSettings MenuSettingsError default_out_dir '
    'load_existing',
}
_LAZY = {name: mod for mod, names in _NAMES.items() for name in names.split()}
__all__ = list(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
