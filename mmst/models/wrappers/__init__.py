from .st_distributed import STDistributedDataParallel

__all__ = ['STDistributedDataParallel']
