"""The depth menu: every sub-network of a trained elastic model measured on
the user's device, the Pareto frontier of metric vs cost, and the choice
of one member under a budget (``docs/depth_menu.md``, which lists the
modules). Its names are imported from their module on first use (PEP 562).
"""

from ...utils import lazy_getattr

_LAZY = {
    'build_menu': 'build',
    'export_member': 'build',
    'CachedBatches': 'measure',
    'cache_loader': 'measure',
    'BudgetError': 'outputs',
    'choose_member': 'outputs',
    'frontier': 'outputs',
    'markdown_table': 'outputs',
    'member_cost': 'outputs',
    'member_metric': 'outputs',
    'pareto_front': 'outputs',
    'write_outputs': 'outputs',
    'MENU_FORMAT': 'settings',
    'MenuSettings': 'settings',
    'MenuSettingsError': 'settings',
    'default_out_dir': 'settings',
    'load_existing': 'settings',
}
__all__ = list(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
