"""Analysis of trained elastic networks as a library: the member sweep,
the loafing table, logit magnitudes, sub-network cost and latency, the
depth menu (``docs/analysis.md``); the command-line tools under ``tools/``
are thin wrappers around it. Exporting a member: :mod:`mmst.deploy`.

The names below are imported from their submodule on first use (the sweep
imports MMEngine's runner, seconds); the other helpers live in the
submodules (``mmst.analysis.sweep``, ``.cost``, ``.latency``, ``.menu``).
"""

from ..utils import lazy_getattr

# name -> submodule, imported on first access (PEP 562).
_LAZY = {
    'FLOPS_CONVENTION': 'cost',
    'count_flops': 'cost',
    'count_params': 'cost',
    'flatten_outputs': 'cost',
    'Measure': 'sweep',
    'Sweep': 'sweep',
    'TaskMetric': 'sweep',
    'build_evaluation': 'sweep',
    'build_recal_loader': 'sweep',
    'build_runner': 'sweep',
    'input_shape_of': 'sweep',
    'load_config': 'sweep',
    'load_weights': 'sweep',
    'model_space': 'sweep',
    'open_sweep': 'sweep',
    'markdown_table': 'loafing',
    'run_loafing': 'loafing',
    'write_all': 'loafing',
    'LogitMagnitude': 'logits',
    'check_classifier': 'logits',
    'logit_table': 'logits',
    'run_logit_magnitude': 'logits',
    'write_logit_magnitude': 'logits',
    'build_menu': 'menu',
    'choose_member': 'menu',
    'export_member': 'menu',
}
__all__ = list(_LAZY)

__getattr__ = lazy_getattr(__name__, _LAZY)
