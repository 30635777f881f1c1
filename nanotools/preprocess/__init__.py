"""Preprocessing: from a raw reciprocal-space map to the input of phasing.

Transitional: the module moves into this package (next commit splits it by
step).
"""
from .measure import *  # noqa: F401,F403
from .measure import __all__  # noqa: F401
