from .checks import check_config
from .family import DepthFamily, init_family
from .inference import init_model, is_st_model, load_checkpoint, plain_config
from .launch import prepare_config, register_scope_modules

__all__ = [
    'check_config',
    'DepthFamily',
    'init_family',
    'init_model',
    'load_checkpoint',
    'is_st_model',
    'plain_config',
    'prepare_config',
    'register_scope_modules',
]
