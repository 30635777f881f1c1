"""Array backends for the phasing engine: NumPy (default) or CuPy.

The phasing code is written once against :class:`Backend`; switching to a
GPU is a matter of ``get_backend("cupy")``. All transforms act on a batch:
the leading axis holds the random starts, the transform runs over the others,
unitary (``norm="ortho"``) so Parseval holds and amplitudes stay in counts^0.5.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import ParameterError

__all__ = ["Backend", "get_backend"]


class Backend:
    """FFTs and array creation for one array library and precision.

    Parameters
    ----------
    name
        {"numpy", "cupy"}.
    precision
        {"single", "double"}: complex64/float32 or complex128/float64.
    workers
        Threads for the CPU FFT (scipy.fft); all cores by default.
    """

    def __init__(self, name: str = "numpy", precision: str = "single",
                 workers: int | None = None):
        if precision not in ("single", "double"):
            raise ParameterError(f"precision must be 'single' or 'double', got {precision!r}")
        self.name = name
        self.precision = precision
        self.complex_dtype = np.complex64 if precision == "single" else np.complex128
        self.real_dtype = np.float32 if precision == "single" else np.float64
        if name == "numpy":
            import scipy.fft
            self.xp = np
            self._fft = scipy.fft
            self._fft_kw = {"workers": workers or os.cpu_count() or 1}
        elif name == "cupy":
            try:
                import cupy
                import cupyx.scipy.fft
            except ImportError:
                raise ParameterError("backend 'cupy' asked for, but CuPy is not installed "
                                     "(pip install 'nanotools[gpu]')") from None
            self.xp = cupy
            self._fft = cupyx.scipy.fft
            self._fft_kw = {}
        else:
            raise ParameterError(f"unknown backend {name!r} (known: numpy, cupy)")

    def fft(self, a):
        """Forward unitary FFT over every axis but the first (the batch axis),
        overwriting ``a`` where the library can."""
        axes = tuple(range(1, a.ndim))
        return self._fft.fftn(a, axes=axes, norm="ortho", overwrite_x=True, **self._fft_kw)

    def ifft(self, a):
        """Inverse of :meth:`fft`."""
        axes = tuple(range(1, a.ndim))
        return self._fft.ifftn(a, axes=axes, norm="ortho", overwrite_x=True, **self._fft_kw)

    def asarray(self, a, dtype=None):
        """``a`` on this backend's device, with ``dtype``."""
        return self.xp.asarray(a, dtype=dtype)

    def asnumpy(self, a) -> np.ndarray:
        """``a`` as a NumPy array on the host."""
        if self.name == "cupy":
            return self.xp.asnumpy(a)
        return np.asarray(a)


def get_backend(name: str = "numpy", precision: str = "single", workers: int | None = None
                ) -> Backend:
    """A :class:`Backend` for ``name`` and ``precision``."""
    return Backend(name, precision, workers)
