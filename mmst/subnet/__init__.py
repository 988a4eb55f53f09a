from . import rescale_downstream  # noqa: F401  (registers detection etc.)
from .elastic import ElasticDepth, find_stages
from .rescale import InputSizeSampler, get_rescaler, register_rescaler
from .space import SubnetSpace, format_subnet, subnet_depths

__all__ = [
    'ElasticDepth',
    'find_stages',
    'InputSizeSampler',
    'get_rescaler',
    'register_rescaler',
    'SubnetSpace',
    'format_subnet',
    'subnet_depths',
]
