"""The series layer without a cluster: variable detection, ordering,
the series files, and bad input caught before any cluster starts."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from nanotools.errors import InputError, ParameterError
from nanotools.series import _assemble, _variable_of, run_series, series_variable, write_series


def _summary(i, variable, period=8.0):
    return dict(input_path=f"/data/map{i}.h5", result_path=f"/out/map{i}/result.h5",
                variable=variable, period_nm=period, populations=[3, 1 + i], chosen=0,
                displacement_amplitude_A=0.1 * (i + 1), fourier_error=0.01, wall_time_s=1.0)


def test_series_variable_prefers_temperature():
    assert series_variable({"temperature_K": 250, "delay_ps": 3}) == ("temperature_K", "K", 250.0)
    assert series_variable({"delay_ps": "1.5"}) == ("delay_ps", "ps", 1.5)
    assert series_variable({"temperature_K": float("nan")}) is None
    assert series_variable({}) is None


def test_series_is_ordered_by_its_variable(tmp_path):
    s = [_summary(0, ["temperature_K", "K", 300.0]), _summary(1, ["temperature_K", "K", 100.0]),
         _summary(2, ["temperature_K", "K", 200.0])]
    result = _assemble(s, tmp_path, 3.0, "test")
    assert [e.variable for e in result.entries] == [100.0, 200.0, 300.0]
    assert [Path(e.input_path).name for e in result.entries] == ["map1.h5", "map2.h5", "map0.h5"]
    h5_path, html_path = write_series(result)
    with h5py.File(h5_path, "r") as h5:
        g = h5["entry/series"]
        assert g.attrs["axes"][0] == "temperature_K"
        assert g["temperature_K"].attrs["units"] == "K"
        np.testing.assert_allclose(g["displacement_amplitude"][...], [0.2, 0.3, 0.1])
        assert g["cluster_populations"][...].tolist() == [[3, 2], [3, 3], [3, 1]]
    assert "temperature_K" in html_path.read_text()
    with pytest.raises(InputError):
        write_series(result)  # never overwritten unless asked


def test_mixed_or_missing_variables_fall_back_to_file_order(tmp_path):
    s = [_summary(0, ["temperature_K", "K", 300.0]), _summary(1, None)]
    result = _assemble(s, tmp_path, 1.0, "test")
    assert result.variable_name == "file_order"
    assert [e.variable for e in result.entries] == [0.0, 1.0]
    assert "file order used" in result.notes[0]


def test_bad_input_is_caught_before_the_cluster(tmp_path):
    with pytest.raises(ParameterError):
        run_series(input_path=[], out_dir=tmp_path)
    with pytest.raises(InputError):
        run_series(input_path=[str(tmp_path / "missing.h5")], out_dir=tmp_path / "out")
    f = tmp_path / "map.h5"
    f.write_bytes(b"")
    with pytest.raises(ParameterError):
        run_series(input_path=[str(f)], out_dir=tmp_path / "out", params={"n_starts": "many"})
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "series.h5").write_bytes(b"")
    with pytest.raises(InputError):
        run_series(input_path=[str(f)], out_dir=tmp_path / "done")


def test_rlu_maps_take_the_unit_cell_parameter(tmp_path):
    """r.l.u. axes: the series reads each map with ``-p unit_cell`` as the
    pipeline does (it used to read the map without it and fail)."""
    from nanotools.simulate import simulate_map

    rsm = simulate_map("laminate", shape=(32, 16), seed=0).rsm
    path = tmp_path / "hkl.h5"
    with h5py.File(path, "w") as h5:  # q = 2 pi h / a: with a = 2 pi angstrom, h = q
        entry = h5.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs.update(NX_class="NXdata", signal="counts", axes=["H", "L"])
        data["counts"] = rsm.intensity
        for name, q in zip(("H", "L"), rsm.q):
            data[name] = q
            data[name].attrs["units"] = "rlu"
    with pytest.raises(InputError, match="r.l.u."):
        _variable_of(str(path), {})
    assert _variable_of(str(path), {"unit_cell": str(2 * np.pi)}) is None
