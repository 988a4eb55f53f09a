from .checks import check_config
from .inference import is_st_model, plain_config
from .launch import prepare_config, register_scope_modules

__all__ = [
    'check_config',
    'is_st_model',
    'plain_config',
    'prepare_config',
    'register_scope_modules',
]
