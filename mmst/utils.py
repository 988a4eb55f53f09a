"""Small helpers shared across mmst."""

import importlib.util
import sys
from typing import Callable, Dict, Tuple, Type


def has_package(name: str) -> bool:
    """Whether an optional task library (mmdet, mmseg, ...) is installed."""
    return importlib.util.find_spec(name) is not None


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register all of mmst's components now (OpenMMLab's
    ``<package>.utils.register_all_modules``).

    ``import mmst`` registers nothing but its registries: each registry of
    :mod:`mmst.registry` imports the modules of its ``locations`` on its
    first ``get`` / ``build``. This imports them all at once, with the
    installed task libraries they need (seconds), e.g. before forking
    workers or to list the registries' ``module_dict``.

    Args:
        init_default_scope (bool): Also make ``'mmst'`` the current default
            scope (``mmengine.registry.init_default_scope``).
    """
    from mmengine.registry import init_default_scope as init_scope

    from mmst import registry

    for value in vars(registry).values():
        if isinstance(value, registry.Registry):
            value.import_from_location()
    if init_default_scope:
        init_scope('mmst')


def run_tool(
    main: Callable[[], object],
    prog: str,
    errors: Tuple[Type[BaseException], ...] = (ValueError, FileNotFoundError),
) -> None:
    """Run a command-line tool's ``main()`` and exit: an error of
    ``errors`` as one line ``PROG: error: MESSAGE`` on stderr and exit
    status 1 (argparse's own errors exit with 2), else the status ``main``
    returns when it is an integer, or 0."""
    try:
        status = main()
    except errors as e:
        print(f'{prog}: error: {e}', file=sys.stderr)
        sys.exit(1)
    sys.exit(status if isinstance(status, int) else 0)


def lazy_getattr(package: str, names: Dict[str, str]) -> Callable:
    """A PEP 562 module ``__getattr__`` for ``package``: ``package.NAME``,
    for ``NAME`` a key of ``names``, imports the submodule ``names[NAME]``
    (relative to ``package``) on first access and keeps the value in the
    package; any other name raises AttributeError."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(
                f'module {package!r} has no attribute {name!r}'
            )
        value = getattr(
            importlib.import_module(f'.{names[name]}', package), name
        )
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
