from .elastic import ElasticDepth, find_stages
from .rescale import InputSizeSampler, rescale_batch, resize_padded_batch
from .space import (
    NAMED_SUBNETS,
    SubnetSpace,
    check_depths,
    format_subnet,
    inter_stage_depths,
    parse_subnet_spec,
    parse_subnet_specs,
    resolve_subnet_depths,
    resolve_subnets,
    subnet_depths,
)

__all__ = [
    'ElasticDepth',
    'find_stages',
    'InputSizeSampler',
    'rescale_batch',
    'resize_padded_batch',
    'SubnetSpace',
    'format_subnet',
    'inter_stage_depths',
    'subnet_depths',
    'check_depths',
    'resolve_subnet_depths',
    'NAMED_SUBNETS',
    'parse_subnet_spec',
    'parse_subnet_specs',
    'resolve_subnets',
]
