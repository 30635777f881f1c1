"""save_stage / load_stage: every stage dataclass round-trips bit for bit."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nanotools.errors import InputError
from nanotools.io import ReciprocalSpaceMap, hdf5, load_stage, save_stage


@pytest.fixture(autouse=True)
def _this_module_may_be_stored(monkeypatch):
    """The round trips store this file's own dataclasses: allow its module
    beside nanotools (stage files name nanotools dataclasses only)."""
    monkeypatch.setattr(hdf5, "STAGE_PACKAGES", ("nanotools", __name__))


@dataclasses.dataclass
class Cluster:
    label: int
    n_members: int
    mean: np.ndarray
    score: float


@dataclasses.dataclass
class Result:
    supercells: np.ndarray
    clusters: list
    chosen: int
    chosen_reason: str
    shape: tuple
    notes: list
    extra: dict
    nothing: None = None
    flag: bool = False
    derived: float = dataclasses.field(init=False, default=0.0)


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: np.ndarray
    b: str = "x"


def _result():
    rng = np.random.default_rng(1)
    cells = (rng.normal(size=(5, 4, 3)) + 1j * rng.normal(size=(5, 4, 3))).astype(np.complex64)
    cells[0, 0, 0] = np.nan + 1j * np.inf
    clusters = [Cluster(i, 2 + i, cells[i].copy(), 0.1 * i) for i in range(3)]
    res = Result(cells, clusters, 2, "lowest error / 2 members", (4, 3),
                 ["cropped to 64x32", "background 3.5"],
                 {"temperature_K": 250.0, "a/b.c": np.float32(1.5), 3: [1, (2, "z")],
                  "empty": np.zeros((0, 2)), "seed": np.int64(7), "u": np.array(["ab", "c"])},
                 None, True)
    res.derived = -0.0
    return res


def test_nested_dataclasses_round_trip(tmp_path, assert_identical):
    res = _result()
    path = save_stage(tmp_path / "stage.h5", res)
    back = load_stage(path)
    assert isinstance(back, Result) and isinstance(back.clusters[1], Cluster)
    assert_identical(res, back)
    # the derived (init=False) field comes back as saved, not as its default
    assert np.signbit(back.derived)


def test_reciprocal_space_map_round_trip(tmp_path, assert_identical):
    rng = np.random.default_rng(0)
    rsm = ReciprocalSpaceMap(rng.poisson(5.0, size=(6, 5)).astype(float),
                             np.zeros((6, 5), bool),
                             (np.linspace(-.1, .1, 6), np.linspace(3, 3.2, 5)),
                             ("qx", "qz"), "axis name 'qz'", "sim", {"temperature_K": 10.0})
    assert_identical(rsm, load_stage(save_stage(tmp_path / "m.h5", rsm), ReciprocalSpaceMap))


def test_frozen_and_odd_strings(tmp_path, assert_identical):
    obj = Frozen(np.arange(3, dtype=np.uint16), "nul\x00 and lone surrogate \ud800 and é")
    assert_identical(obj, load_stage(save_stage(tmp_path / "f.h5", obj)))


def test_big_int_and_path(tmp_path, assert_identical):
    obj = {"big": 2**70, "neg": -2**63, "p": Path("/a/b"), "b": b"\x00\x01", "c": 1 - 2j}
    assert_identical(obj, load_stage(save_stage(tmp_path / "d.h5", obj)))


def test_wrong_class_is_refused(tmp_path):
    save_stage(tmp_path / "f.h5", Frozen(np.zeros(2)))
    with pytest.raises(InputError, match="holds a Frozen, expected ReciprocalSpaceMap"):
        load_stage(tmp_path / "f.h5", ReciprocalSpaceMap)


def test_a_file_naming_another_module_is_refused_before_importing_it(tmp_path, monkeypatch):
    save_stage(tmp_path / "f.h5", Frozen(np.zeros(2)))
    with h5py.File(tmp_path / "f.h5", "r+") as h5:
        h5["stage"].attrs["nt_class"] = "antigravity:Nothing"  # importing it opens a browser
    monkeypatch.setattr(hdf5, "STAGE_PACKAGES", ("nanotools",))
    with pytest.raises(InputError, match="nanotools dataclasses only"):
        load_stage(tmp_path / "f.h5")
    import sys
    assert "antigravity" not in sys.modules
    with h5py.File(tmp_path / "f.h5", "r+") as h5:
        h5["stage"].attrs["nt_class"] = "nanotools.io.hdf5:atomic_h5"  # not a dataclass
    with pytest.raises(InputError, match="nanotools dataclasses only"):
        load_stage(tmp_path / "f.h5")


def test_not_a_stage_file(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = 1
    with pytest.raises(InputError, match="not a nanotools stage file"):
        load_stage(tmp_path / "other.h5")
    with pytest.raises(InputError, match="file not found"):
        load_stage(tmp_path / "missing.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(InputError, match="cannot read stage file"):
        load_stage(tmp_path / "text.h5")


def test_unsupported_value_leaves_no_file(tmp_path):
    with pytest.raises(TypeError, match="cannot save /stage/values/0 of type object"):
        save_stage(tmp_path / "bad.h5", {"x": object()})
    assert list(tmp_path.iterdir()) == []


_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8),
    st.complex_numbers(allow_nan=True), st.binary(max_size=8),
    hnp.arrays(st.sampled_from([np.float32, np.float64, np.complex64, np.int8, np.bool_,
                                np.uint64]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)),
)
_nested = st.recursive(_leaf, lambda c: st.one_of(
    st.lists(c, max_size=3), st.tuples(c, c),
    st.dictionaries(st.one_of(st.text(max_size=5), st.integers()), c, max_size=3)), max_leaves=8)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_nested)
def test_any_nested_value_round_trips(tmp_path, assert_identical, value):
    assert_identical(value, load_stage(save_stage(tmp_path / "h.h5", value)))
