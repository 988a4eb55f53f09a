"""Analysis of trained elastic networks as a library: the member sweep,
the loafing table, logit magnitudes, sub-network cost and latency, the
depth menu (``docs/analysis.md``); the command-line tools under ``tools/``
are thin wrappers around it. Exporting a member: :mod:`mmst.deploy`."""

from mmst.subnet.space import resolve_subnet_depths

from .cost import (
    FLOPS_CONVENTION,
    TensorOutputs,
    count_flops,
    count_params,
    flatten_outputs,
    skipped_blocks,
)
from .latency import (
    eager_latency,
    machine_info,
    onnxruntime_latency,
    resolve_device,
)
from .loafing import (
    markdown_table,
    plot,
    run_loafing,
    write_all,
    write_csv,
)
from .logits import (
    LogitMagnitude,
    check_classifier,
    logit_table,
    plot_logit_magnitude,
    run_logit_magnitude,
    write_logit_magnitude,
)
from .menu import (
    BudgetError,
    MenuSettingsError,
    build_menu,
    choose_member,
    export_member,
    frontier,
    pareto_front,
    write_outputs,
)
from .runner import (
    SPLITS,
    build_evaluation,
    build_recal_loader,
    build_runner,
    check_bn_recal_images,
    input_shape_of,
    load_config,
    load_weights,
    model_space,
    progress,
    quiet_logs,
)
from .sweep import (
    Measure,
    Sweep,
    TaskMetric,
    check_checkpoints,
    default_labels,
    open_sweep,
    select_metric,
)

__all__ = [
    'check_bn_recal_images',
    'FLOPS_CONVENTION',
    'count_flops',
    'count_params',
    'skipped_blocks',
    'SPLITS',
    'build_evaluation',
    'build_recal_loader',
    'build_runner',
    'input_shape_of',
    'load_config',
    'load_weights',
    'model_space',
    'progress',
    'quiet_logs',
    'Measure',
    'Sweep',
    'TaskMetric',
    'check_checkpoints',
    'open_sweep',
    'default_labels',
    'markdown_table',
    'plot',
    'run_loafing',
    'select_metric',
    'write_all',
    'write_csv',
    'check_classifier',
    'LogitMagnitude',
    'logit_table',
    'plot_logit_magnitude',
    'run_logit_magnitude',
    'write_logit_magnitude',
    'TensorOutputs',
    'flatten_outputs',
    'resolve_subnet_depths',
    'eager_latency',
    'machine_info',
    'onnxruntime_latency',
    'resolve_device',
    'BudgetError',
    'MenuSettingsError',
    'build_menu',
    'choose_member',
    'export_member',
    'frontier',
    'pareto_front',
    'write_outputs',
]
