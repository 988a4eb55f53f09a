from .elastic import ElasticDepth, find_stages
from .rescale import InputSizeSampler, rescale_batch, resize_padded_batch
from .space import SubnetSpace, format_subnet, subnet_depths

__all__ = [
    'ElasticDepth',
    'find_stages',
    'InputSizeSampler',
    'rescale_batch',
    'resize_padded_batch',
    'SubnetSpace',
    'format_subnet',
    'subnet_depths',
]
