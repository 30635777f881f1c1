"""Reading reciprocal-space maps and writing results (NeXus/HDF5).

Transitional: the module moves into this package (next commit splits it by
concern).
"""
from .nexus import *  # noqa: F401,F403
from .nexus import __all__, _atomic_h5, _nx_entry  # noqa: F401
