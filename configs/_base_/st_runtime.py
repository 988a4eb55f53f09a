# What every mmst config adds to an upstream config: register mmst, and use
# mmst's data-parallel wrapper when a launcher starts several processes
# (MMEngine uses model_wrapper_cfg only in distributed runs).
custom_imports = dict(imports=['mmst'], allow_failed_imports=False)
model_wrapper_cfg = dict(type='mmst.STDistributedDataParallel')
