from .launch import prepare_config, register_scope_modules

__all__ = ['prepare_config', 'register_scope_modules']
