"""nanotools: real-space images of periodic thin-film nanotextures from X-ray
reciprocal-space maps (phase retrieval + pattern recognition, after Shao et
al., PNAS 120, e2303312120, 2023).

Stages, one module each: :mod:`~nanotools.simulate`, :mod:`~nanotools.io`,
:mod:`~nanotools.preprocess`, :mod:`~nanotools.phasing`,
:mod:`~nanotools.patterns`, :mod:`~nanotools.analysis`,
:mod:`~nanotools.plotting`.
"""
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("nanotools")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .errors import InputError, NanotoolsError, ParameterError  # noqa: E402

__all__ = ["__version__", "NanotoolsError", "InputError", "ParameterError"]
