"""Beamline and lab files, written by the real writers: nexusformat in the
exact nxrefine layout (wrapper + external links + weights, a virtual 4-D
series), silx's NXdata writer, PANalytical .xrdml and Rigaku .ras files
that xrayutilities reads; --hkl windows read from disk alone."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from nanotools.errors import InputError
from nanotools.io import read_map, write_map
from nanotools.io.nxrefine import (
    describe_volume,
    write_nxrefine_scan,
)
from nanotools.io.window import plan_window, read_window
from nanotools.simulate import simulate_map

_spec = importlib.util.spec_from_file_location(
    "beamline_bench", Path(__file__).resolve().parent.parent / "benchmarks" / "beamline.py")
beamline = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(beamline)

CELL = beamline.CELL


@pytest.fixture(scope="module")
def qm2(tmp_path_factory):
    """A QM2 volume with two reflections: the textured film at (0 0 2), a
    decoy with another texture at (0 0 1); and the same (0 0 2) map as a
    plain 2-D file."""
    folder = tmp_path_factory.mktemp("qm2")
    sim = simulate_map("laminate", shape=(128, 64), period_nm=12.0, thickness_nm=30.0,
                       patch_periods=4, total_counts=1e8, gap_pixels=3, seed=1)
    decoy = simulate_map("checkerboard", shape=(128, 64), period_nm=20.0, thickness_nm=30.0,
                         G=2 * np.pi / CELL[2], total_counts=1e8, gap_pixels=0, seed=2)
    data, weights, H, K, L = beamline.hkl_volume(sim, decoy=decoy, n_k=12, seed=3)
    wrapper = write_nxrefine_scan(folder, "film", "300K", data, H, K, L, unit_cell=CELL,
                                  weights=weights, temperature_K=300.0, chunks=(16, 12, 32))
    return dict(folder=folder, wrapper=wrapper, sim=sim, H=H, K=K, L=L, shape=data.shape)


def test_nxrefine_layout_as_written_by_nexusformat(qm2):
    """The wrapper holds links, not data: signal and weights resolve to
    <scan>/transform.nxs, the cell comes from unitcell_*, the q scale from
    scaling_factor."""
    with h5py.File(qm2["wrapper"]) as h5:
        link = h5["entry/transform"].get("data", getlink=True)
        assert isinstance(link, h5py.ExternalLink)
        assert (link.filename, link.path) == ("300K/transform.nxs", "/entry/data/v")
        assert isinstance(h5["f1/transform"].get("weights", getlink=True), h5py.ExternalLink)
        assert list(h5["entry/transform"].attrs["axes"]) == ["Ql", "Qk", "Qh"]
    vol = describe_volume(qm2["wrapper"])
    assert vol.signal.file.name == "transform.nxs" and vol.signal.path == "/entry/data/v"
    assert vol.weights.path == "/entry/data/n"
    assert vol.shape == qm2["shape"] and vol.chunks == (16, 12, 32)
    assert vol.unit_cell == CELL and vol.temperature_K == 300.0
    assert [a.name for a in vol.axes] == ["Ql", "Qk", "Qh"]
    assert vol.axes[2].scaling_factor == pytest.approx(2 * np.pi / 3.9)
    assert vol.bytes_on_disk > 0


def test_hkl_picks_the_right_reflection(qm2):
    """--hkl 0 0 2 finds the film peak at L = 2 (q_z = 2 x 2 pi / 3.9), --hkl
    0 0 1 the decoy at L = 1; the window around (0 0 2), summed over K,
    gives back the plain 2-D map (data / weights, mask from weights = 0)."""
    vol = describe_volume(qm2["wrapper"])
    step_l = qm2["L"][1] - qm2["L"][0]
    w2 = plan_window(vol, (0, 0, 2))
    w1 = plan_window(vol, (0, 0, 1))
    assert abs(w2.peak_hkl[0] - 2.0) <= step_l and abs(w1.peak_hkl[0] - 1.0) <= 2 * step_l
    assert w2.reduce == "sum" and w2.reduce_axis == 1  # satellites along H only
    rsm = read_window(qm2["wrapper"], (0, 0, 2))
    assert rsm.ndim == 2 and rsm.axis_names == ("Qh", "Ql")
    peak = np.unravel_index(np.argmax(np.where(rsm.mask, 0, rsm.intensity)), rsm.shape)
    assert rsm.q[1][peak[1]] == pytest.approx(2 * 2 * np.pi / 3.9, abs=2 * np.diff(rsm.q[1])[0])
    # the same pixels as the plain map, up to float32 storage
    plain = qm2["sim"].rsm
    index = []
    for axis in range(2):  # the window's pixels in the plain map
        step = plain.q[axis][1] - plain.q[axis][0]
        index.append(np.rint((rsm.q[axis] - plain.q[axis][0]) / step).astype(int))
    rows = (index[0] >= 0) & (index[0] < plain.shape[0])
    cols = (index[1] >= 0) & (index[1] < plain.shape[1])
    # the window spans the texture: all but the edge columns of H, all of L
    assert rows.sum() >= plain.shape[0] - 4 and cols.sum() == plain.shape[1]
    sub = np.ix_(index[0][rows], index[1][cols])
    a, b = rsm.intensity[np.ix_(rows, cols)], plain.intensity[sub]
    both = ~rsm.mask[np.ix_(rows, cols)] & ~plain.mask[sub]
    np.testing.assert_allclose(a[both], b[both], rtol=2e-6, atol=1e-3)
    # the plain map's gap (weights 0 in the volume) is masked in the window
    gap = plain.mask[sub] & (b == 0)
    assert rsm.mask[np.ix_(rows, cols)][gap].all()
    assert any("stripe texture" in n for n in rsm.metadata["notes"])


def test_reduce_none_and_slice_and_window_rlu(qm2):
    full = read_window(qm2["wrapper"], (0, 0, 2), reduce="none")
    assert full.ndim == 3 and full.axis_names == ("Qh", "Qk", "Ql")
    plane = read_window(qm2["wrapper"], (0, 0, 2), reduce="slice")
    assert plane.ndim == 2
    fixed = read_window(qm2["wrapper"], (0, 0, 2), window_rlu=0.1, reduce="none")
    step_h = qm2["H"][1] - qm2["H"][0]
    # 2 x 0.05 r.l.u. = 33 steps, grown to the next 2-3-5-smooth length, 36
    assert 2 * int(round(0.05 / step_h)) + 1 == 33 and fixed.shape[0] == 36
    with pytest.raises(InputError, match="lies outside the volume"):
        read_window(qm2["wrapper"], (0, 0, 4))
    with pytest.raises(InputError, match=r"no Bragg peak near \(1 0 2\)|outside"):
        read_window(qm2["wrapper"], (1, 0, 2))


def test_only_the_window_is_read(qm2, monkeypatch):
    """Every read of the signal and weights goes through h5py's
    Dataset.__getitem__: count the voxels. Measured: the +-0.5 r.l.u. search
    box plus the window, about 0.5 of this small volume, which spans
    L = 0.8-2.2 (in a real 10^9-voxel volume the same box is ~1e-3 of it);
    a 'slice' reads one K plane of the window."""
    counted = []
    original = h5py.Dataset.__getitem__

    def counting(self, key, *args, **kwargs):
        out = original(self, key, *args, **kwargs)
        if self.name in ("/entry/data/v", "/entry/data/n"):
            counted.append((self.name, int(np.size(out))))
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    vol = describe_volume(qm2["wrapper"])
    total = int(np.prod(vol.shape))
    win = plan_window(vol, (0, 0, 2))
    search = sum(n for name, n in counted if name == "/entry/data/v")
    counted.clear()
    read_window(qm2["wrapper"], (0, 0, 2), reduce="slice")
    window = [n for name, n in counted if name == "/entry/data/v"]
    in_window = int(np.prod([s.stop - s.start for s in win.slices]))
    # the search box: +-0.5 r.l.u. in L of a 1.4 r.l.u. wide volume
    assert search < 0.75 * total
    # the slice: the search box again, then one K plane of the window and nothing else
    assert window[-1] == in_window // (win.slices[1].stop - win.slices[1].start)
    assert sum(window) <= search + in_window


def test_wrapper_without_its_linked_file_names_both(qm2, tmp_path):
    import shutil

    copy = tmp_path / qm2["wrapper"].name
    shutil.copy(qm2["wrapper"], copy)  # copied without the 300K/ folder
    with pytest.raises(InputError) as info:
        read_map(copy, hkl=(0, 0, 2))
    text = str(info.value)
    assert "300K/transform.nxs" in text and copy.name in text and "missing" in text


def test_consolidated_series_virtual_datasets(tmp_path):
    """nxconsolidate's 4-D NXdata (temperature, L, K, H) of virtual datasets:
    the scan axis is read from the file, each map's window is cut from its
    own scan; a missing source file is an error, not a block of zeros."""
    scans = beamline.write_series(tmp_path, temperatures=(300.0, 320.0))
    with h5py.File(scans) as h5:
        ds = h5["entry/transform/data"]
        assert ds.is_virtual and ds.ndim == 4
    vol = describe_volume(scans)
    assert vol.scan_axis.name == "temperature" and vol.scan_axis.units == "K"
    assert list(vol.scan_axis.values) == [300.0, 320.0]
    maps = [read_map(scans, hkl="0 0 2", scan=i) for i in range(2)]
    assert [m.metadata["temperature_K"] for m in maps] == [300.0, 320.0]
    assert all(m.ndim == 2 for m in maps)
    with pytest.raises(InputError, match="series"):
        read_map(scans)  # 4-D without --hkl/--scan: one line saying what to do
    (tmp_path / "320K" / "transform.nxs").unlink()
    with pytest.raises(InputError, match="missing source"):
        read_map(scans, hkl="0 0 2", scan=0)


def test_virtual_sources_relative_to_the_virtual_file(tmp_path, monkeypatch):
    """Relative source names are found next to the virtual file, whatever
    the working directory (HDF5's ${ORIGIN} prefix)."""
    folder = tmp_path / "data"
    folder.mkdir()
    block = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6) + 1
    for i in range(2):
        with h5py.File(folder / f"s{i}.h5", "w") as h5:
            h5["v"] = block * (i + 1)
    layout = h5py.VirtualLayout(shape=(2, 4, 5, 6), dtype=np.float32)
    for i in range(2):
        layout[i] = h5py.VirtualSource(f"s{i}.h5", "v", shape=(4, 5, 6))
    with h5py.File(folder / "series.h5", "w") as h5:
        h5.attrs["default"] = "entry"
        g = h5.create_group("entry/data")
        h5["entry"].attrs.update(NX_class="NXentry", default="data")
        g.attrs.update(NX_class="NXdata", signal="v", axes=["temperature", "Ql", "Qk", "Qh"])
        g.create_virtual_dataset("v", layout)
        g["temperature"] = [10.0, 20.0]
        g["temperature"].attrs["units"] = "K"
        for name, n in (("Ql", 4), ("Qk", 5), ("Qh", 6)):
            g[name] = np.linspace(-0.1, 0.1, n) + (2 if name == "Ql" else 0)
            g[name].attrs["units"] = "rlu"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rsm = read_map(folder / "series.h5", scan=1, unit_cell="3.9")
    assert rsm.intensity.max() == pytest.approx(2 * block.max())


def test_nexusformat_and_silx_nxdata(tmp_path):
    """NXdata written by nexusformat (NeXpy) and by silx (units only in the
    long names, '.' for a dimension without an axis, @interpretation)."""
    from nexusformat.nexus import NXdata, NXentry, NXfield, NXroot
    from silx.io.nxdata import save_NXdata

    sim = simulate_map("laminate", shape=(64, 32), seed=0).rsm
    root = NXroot(NXentry(NXdata(NXfield(sim.intensity, name="counts"),
                                 [NXfield(sim.q[0], name="qx", units="1/angstrom"),
                                  NXfield(sim.q[1], name="qz", units="1/angstrom")])))
    root.save(tmp_path / "nexpy.nxs", mode="w")
    a = read_map(tmp_path / "nexpy.nxs")
    np.testing.assert_array_equal(a.q[0], sim.q[0])
    assert a.out_of_plane_reason == "metadata: the axis name 'qz' means out-of-plane"
    # silx: a 2-D map (axes in signal order z, x) with units in the long names
    save_NXdata(str(tmp_path / "silx.h5"), sim.intensity.T, axes=[sim.q[1], sim.q[0]],
                signal_name="counts", axes_names=["qz", "qx"],
                axes_long_names=["q_z (1/angstrom)", "q_x (1/angstrom)"], interpretation="image")
    b = read_map(tmp_path / "silx.h5")
    assert b.axis_names == ("qx", "qz")
    np.testing.assert_array_equal(b.intensity[~b.mask], a.intensity[~a.mask])
    # silx: a stack of three 2-D maps, the stack dimension without an axis (".")
    stack = np.stack([sim.intensity.T * (i + 1) for i in range(3)])
    save_NXdata(str(tmp_path / "stack.h5"), stack, axes=[None, sim.q[1], sim.q[0]],
                signal_name="counts", axes_names=[".", "qz", "qx"],
                axes_long_names=["", "q_z [1/angstrom]", "q_x [1/angstrom]"],
                interpretation="image")
    with h5py.File(tmp_path / "stack.h5") as h5:
        group = h5[h5.attrs["default"]][h5[h5.attrs["default"]].attrs["default"]]
        assert list(group.attrs["axes"])[0] == "."
    vol = describe_volume(tmp_path / "stack.h5")
    assert vol.n_scans == 3 and vol.scan_axis.name == "scan_index"
    third = read_map(tmp_path / "stack.h5", scan=2)
    measured = ~third.mask & ~a.mask
    np.testing.assert_allclose(third.intensity[measured], 3 * a.intensity[measured])


def _nanotools(*args, cwd):
    return subprocess.run([sys.executable, "-m", "nanotools", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_check_json_on_a_qm2_volume(qm2):
    """One JSON object: shape, every axis' name, units, range in its units
    and in 1/angstrom, the out-of-plane axis and why, the Bragg peak."""
    proc = _nanotools("check", qm2["wrapper"].name, "--hkl", "0", "0", "2", "--json",
                      cwd=qm2["folder"])
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["shape"] == list(qm2["shape"])
    assert [a["name"] for a in d["axes"]] == ["Ql", "Qk", "Qh"]
    ql = d["axes"][0]
    assert ql["units"] == "r.l.u."
    assert ql["range_inv_angstrom"][0] == pytest.approx(ql["range"][0] * 2 * np.pi / 3.9)
    assert d["out_of_plane"]["axis"] == "Ql" and "Ql" in d["out_of_plane"]["reason"]
    assert d["bragg_peak"]["q_inv_angstrom"][-1] == pytest.approx(2 * 2 * np.pi / 3.9, abs=0.01)
    assert d["window"]["reduce"] == "sum" and d["unit_cell"][:3] == [3.9, 3.9, 3.9]
    text = _nanotools("check", qm2["wrapper"].name, cwd=qm2["folder"]).stdout
    assert "lattice: 3.9, 3.9, 3.9, 90, 90, 90" in text and "on disk" in text


@pytest.mark.parametrize("name", ["rsm.xrdml", "rsm.xrdml.bz2", "rsm.ras", "rsm.ras.gz"])
def test_lab_maps_through_xrayutilities(tmp_path, name):
    """A symmetric film peak at 2theta = 46.5 deg (Cu K-alpha1): q_z =
    4 pi sin(23.25 deg) / 1.5406 = 3.2199 1/angstrom, q_x = 0; measured on
    the 21 x 61 grid within one bin (0.0007 off)."""
    from _lab_files import peak_q, write_ras, write_xrdml

    path = (write_xrdml if "xrdml" in name else write_ras)(tmp_path / name)
    rsm = read_map(path)
    assert rsm.shape == (21, 61) and rsm.axis_names == ("qx", "qz")
    assert rsm.metadata["wavelength_A"] == pytest.approx(1.540598)
    proc = _nanotools("check", name, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    peak = json.loads(proc.stdout)["bragg_peak"]["q_inv_angstrom"]
    assert abs(peak[0]) < np.diff(rsm.q[0])[0]
    assert peak[1] == pytest.approx(peak_q(), abs=np.diff(rsm.q[1])[0])


def test_angle_axes_in_nexus_converted_with_the_stated_wavelength(tmp_path):
    from _lab_files import WAVELENGTH, peak_q

    oms, tts = np.linspace(22.0, 24.5, 41), np.linspace(44.5, 48.5, 61)
    om_grid, tt_grid = np.meshgrid(oms, tts, indexing="ij")
    k, th = 2 * np.pi / WAVELENGTH, np.radians(tt_grid / 2)
    qz = 2 * k * np.sin(th) * np.cos(np.radians(om_grid) - th)
    qx = 2 * k * np.sin(th) * np.sin(np.radians(om_grid) - th)
    counts = 1 + 1e4 * np.exp(-0.5 * ((qz - peak_q()) / 0.01) ** 2 - 0.5 * (qx / 0.005) ** 2)
    with h5py.File(tmp_path / "angles.h5", "w") as h5:
        beam = h5.create_group("entry/instrument/beam")
        beam.attrs["NX_class"] = "NXbeam"
        beam["incident_wavelength"] = WAVELENGTH / 10
        beam["incident_wavelength"].attrs["units"] = "nm"
        g = h5.create_group("entry/data")
        g.attrs.update(NX_class="NXdata", signal="counts", axes=["omega", "two_theta"])
        g["counts"] = counts
        for name, values in (("omega", oms), ("two_theta", tts)):
            g[name] = values
            g[name].attrs["units"] = "degrees"
    rsm = read_map(tmp_path / "angles.h5")
    peak = np.unravel_index(np.argmax(np.where(rsm.mask, 0, rsm.intensity)), rsm.shape)
    assert rsm.q[1][peak[1]] == pytest.approx(peak_q(), abs=np.diff(rsm.q[1])[0])
    assert abs(rsm.q[0][peak[0]]) <= np.diff(rsm.q[0])[0]


def test_plain_map_file_still_reads_with_hkl_refused_for_lab(tmp_path):
    from _lab_files import write_xrdml

    from nanotools.errors import ParameterError

    with pytest.raises(ParameterError, match="lab map in angles"):
        read_map(write_xrdml(tmp_path / "a.xrdml"), hkl="0 0 2")
    sim = simulate_map("laminate", shape=(64, 32), seed=0).rsm
    back = read_map(write_map(tmp_path / "m.h5", sim))
    np.testing.assert_array_equal(back.intensity, sim.intensity)


@pytest.mark.dask
def test_series_from_one_consolidated_file(tmp_path):
    """``series scans.nxs --hkl 0 0 2``: one result per scan, the series
    ordered by the temperature read from the file, its report written."""
    from nanotools.series import run_series

    scans = beamline.write_series(tmp_path / "beamline", temperatures=(320.0, 300.0))
    params = {"hkl": "0 0 2", "n_starts": 2, "algorithm": "HIO**40 ER**20", "n_clusters": 1,
              "keep_runs": 1}
    result = run_series(input_path=[str(scans)], out_dir=tmp_path / "out", params=params,
                        seed=0, n_workers=1, report=False)
    assert result.variable_name == "temperature_K"
    assert [e.variable for e in result.entries] == [300.0, 320.0]
    assert all(Path(e.result_path).is_file() for e in result.entries)
    # 128 nm / 10 at 300 K, 128 nm / 9 at 320 K
    assert [e.period_nm for e in result.entries] == pytest.approx([12.8, 14.22], rel=0.03)
    assert (tmp_path / "out" / "series.html").is_file()
    with h5py.File(tmp_path / "out" / "series.h5") as h5:
        assert list(h5["entry/series/temperature_K"][...]) == [300.0, 320.0]


def test_check_samples_a_volume_too_large_to_read_whole(qm2, monkeypatch):
    """Without --hkl, a volume over the whole-read limit is checked on a
    coarse grid (here the limit is lowered to 1000 voxels)."""
    from nanotools.io import describe

    monkeypatch.setattr(describe, "MAX_WHOLE_VOXELS", 1000)
    monkeypatch.setattr(describe, "_COARSE_VOXELS", 20000)
    d = describe.describe_file(qm2["wrapper"])
    assert any("checked every" in n for n in d["notes"])
    assert np.prod(d["map"]["shape"]) <= 20000
    # the strongest reflection of the coarse map: the decoy (0 0 1) or the film (0 0 2)
    ql = d["bragg_peak"]["q_inv_angstrom"][-1] / (2 * np.pi / 3.9)
    assert min(abs(ql - 1), abs(ql - 2)) < 0.05
