"""Analysis of trained elastic networks as a library: the member sweep,
the loafing table, logit magnitudes, sub-network cost and latency, the
depth menu (``docs/analysis.md``); the command-line tools under ``tools/``
are thin wrappers around it. Exporting a member: :mod:`mmst.deploy`.
The names below load their submodule on first use (PEP 562; the sweep
imports MMEngine's runner: seconds); other helpers stay in the submodules.
"""

from ..utils import lazy_getattr

_NAMES = {
    'cost': 'FLOPS_CONVENTION count_flops count_params flatten_outputs',
    'sweep': 'Measure Sweep TaskMetric build_evaluation build_recal_loader '
    'build_runner input_shape_of load_config load_weights model_space '
    'open_sweep',
    'loafing': 'markdown_table run_loafing write_all',
    'logits': 'LogitMagnitude check_classifier logit_table '
    'run_logit_magnitude write_logit_magnitude',
    'menu': 'build_menu choose_member export_member',
}
_LAZY = {name: mod for mod, names in _NAMES.items() for name in names.split()}
__all__ = list(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
