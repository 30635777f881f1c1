"""Shared test fixtures (kept small: each test file builds its own data)."""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

# FFTW_PATIENT plans (the engine's default) take minutes for a new 3-D
# shape on a fresh machine, and a plan chosen by timing may differ from one
# machine (or load) to the next, which moves the last bits of a result; the
# tests plan dozens of shapes once each and compare rounded figures with
# stored references (notebook summaries), so they use FFTW_ESTIMATE plans:
# no timing, the same plan everywhere.
os.environ.setdefault("NANOTOOLS_FFTW_PLANNER", "estimate")


def _assert_identical(a, b, where="value"):
    """Assert that two nested values are equal bit for bit: same types, same
    array dtypes and shapes, same bytes (so NaN payloads and -0.0 count)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        if a.dtype.kind in "US":
            assert np.array_equal(a, b), where
        else:
            assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), where
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), where
    elif isinstance(a, float):
        assert np.float64(a).tobytes() == np.float64(b).tobytes(), f"{where}: {a} != {b}"
    elif isinstance(a, complex):
        assert np.complex128(a).tobytes() == np.complex128(b).tobytes(), f"{where}: {a} != {b}"
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), f"{where}: keys differ"
        for k in a:
            _assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


@pytest.fixture
def assert_identical():
    """The bit-for-bit comparison of nested results, as a fixture."""
    return _assert_identical
