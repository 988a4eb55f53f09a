"""mmst's registries: children (scope ``mmst``) of MMEngine's root
registries, so ``type='mmst.X'`` resolves from an mmdet, mmseg, mmpose or
mmpretrain config, and mmst's own components build the upstream models they
wrap in the caller's default scope.

``TASKS`` (mmst's own root, scope ``mmst``) holds what is task-specific in
an ST step, one ``mmst.models.tasks.BaseTask`` per kind of upstream model;
another package adds a task with ``TASKS.register_module()`` or a child
registry ``Registry('task', parent=TASKS, scope=...)``.

Registration is lazy: ``import mmst`` creates these registries and
imports none of the modules that fill them (nor the task libraries those
import). Each registry's ``locations`` names the modules that register into
it; MMEngine imports them on the registry's first ``get`` / ``build``,
which ``type='mmst.X'`` from another library's registry reaches too (the
root registry finds the ``mmst`` child and asks it). Code that reads a
registry's ``module_dict`` directly calls ``import_from_location()``
first. A module that registers into one of these registries must be listed
in (or imported by) its ``locations``
(tests/test_foundation/test_custom_imports.py checks this)."""

from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

__all__ = [
    'MODELS',
    'MODEL_WRAPPERS',
    'HOOKS',
    'LOOPS',
    'TRANSFORMS',
    'TASKS',
]


def _child(name: str, parent: Registry, *locations: str) -> Registry:
    """mmst's child of an MMEngine registry, filled from ``locations``."""
    return Registry(
        name, parent=parent, scope='mmst', locations=list(locations)
    )


MODELS = _child('model', MMENGINE_MODELS, 'mmst.models')
MODEL_WRAPPERS = _child(
    'model_wrapper', MMENGINE_MODEL_WRAPPERS, 'mmst.models'
)
HOOKS = _child(
    'hook', MMENGINE_HOOKS, 'mmst.engine.checkpoint_hook', 'mmst.engine.cost'
)
LOOPS = _child('loop', MMENGINE_LOOPS, 'mmst.engine.subnet_eval')
TRANSFORMS = _child('transform', MMENGINE_TRANSFORMS, 'mmst.datasets')
TASKS = Registry('task', scope='mmst', locations=['mmst.models.tasks'])
