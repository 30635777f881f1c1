"""Every bad input through the real command line: exit 2, one ``error:`` line.

Each case builds its file in a scratch folder, runs ``python -m nanotools``
in a subprocess there (so messages hold short relative names), and checks:
exit status 2, exactly one line on stderr that starts with ``error:``,
names the problem (a known fragment) and the file, no traceback, and no
result or temporary file left behind. Warning cases (``nanotools check``)
exit 0 and print ``warning:`` lines. The table ``docs/bad-input.md`` is
written from what the commands really printed by ``make docs`` (this file
run as a script); the test fails when the table has drifted.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import h5py
import numpy as np
import pytest

from nanotools.io import write_map
from nanotools.simulate import simulate_map

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-input.md"
SIM = simulate_map("laminate", shape=(64, 32), seed=0).rsm
Q = [("qx", SIM.q[0]), ("qz", SIM.q[1])]


def nexus(path, signal=None, axes=Q, *, units=("1/angstrom", "1/angstrom"), mask=None,
          axes_attr=None, signal_attr="counts"):
    signal = SIM.intensity if signal is None else signal
    with h5py.File(path, "w") as h5:
        h5.attrs["default"] = "entry"
        entry = h5.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry.attrs["default"] = "data"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        if signal_attr is not None:
            data.attrs["signal"] = signal_attr
        data.attrs["axes"] = [n for n, _ in axes] if axes_attr is None else axes_attr
        data["counts"] = signal
        for (name, values), unit in zip(axes, units):
            data[name] = values
            if unit is not None:
                data[name].attrs["units"] = unit
        if mask is not None:
            data["mask"] = mask
    return path


def good(path):
    return write_map(path, SIM)


def truncated(path):
    write_map(path.with_suffix(".full"), SIM)
    raw = path.with_suffix(".full").read_bytes()
    path.with_suffix(".full").unlink()
    path.write_bytes(raw[: len(raw) // 2])


def no_nxdata(path):
    with h5py.File(path, "w") as h5:
        h5["entry/counts"] = SIM.intensity


def zigzag():
    q = SIM.q[1].copy()
    q[3], q[4] = q[4], q[3]
    return [Q[0], ("qz", q)]


def saturated(path):
    s = SIM.intensity.copy()
    s[~SIM.mask] += 100
    p = np.unravel_index(np.argmax(np.where(SIM.mask, 0, s)), s.shape)
    s[p[0] - 2:p[0] + 3, p[1]] = s[p]
    nexus(path, s, mask=SIM.mask)


def few_negative(path):
    s = SIM.intensity.copy()
    s[:3, 0] = -4.0
    nexus(path, s, mask=SIM.mask)


def blob(path):
    g = np.exp(-(np.arange(32)[:, None] - 16) ** 2 / 20 - (np.arange(32)[None] - 16) ** 2 / 20)
    nexus(path, 1e4 * g + 1, [("u", np.linspace(-.1, .1, 32)), ("v", np.linspace(-.1, .1, 32))])


R = ["--out", "result.h5"]
def qm2_missing_link(path):
    """An nxrefine wrapper (nexusformat) copied without its scan folder."""
    import shutil

    from nanotools.io.nxrefine import write_nxrefine_scan

    h = np.linspace(-0.1, 0.1, 8)
    write_nxrefine_scan(path.parent, "film", "300K", np.ones((8, 8, 8)), h, h, 2 + h,
                        unit_cell=(3.9, 3.9, 3.9, 90, 90, 90))
    shutil.rmtree(path.parent / "300K")


def link_loop(path):
    """A wrapper whose signal is an external link back to itself."""
    nexus(path)
    # no file lock: once in a full `make test` (2026-12-07) the reopening
    # failed to lock the file it had just closed (errno 11), which stopped
    # every case of this module; nothing else touches this file
    with h5py.File(path, "a", locking=False) as h5:
        del h5["entry/data/counts"]
        h5["entry/data/counts"] = h5py.ExternalLink(path.name, "/entry/data/counts")


def xrdml_without_wavelength(path):
    from _lab_files import write_xrdml

    write_xrdml(path, wavelength=False)


def angles_without_wavelength(path):
    nexus(path, axes=[("omega", np.linspace(20, 24, 64)), ("two_theta", np.linspace(40, 48, 32))],
          units=("degrees", "degrees"))


#: (case, file name, builder or None, command after 'nanotools', expected fragment,
#:  whether the message must name the file, expected exit status)
CASES = [
    ("missing file", "missing.h5", None, ["reconstruct", "missing.h5", *R],
     "file not found", True, 2),
    ("a directory instead of a file", "folder.h5", lambda p: p.mkdir(),
     ["reconstruct", "folder.h5", *R], "is a directory", True, 2),
    ("empty file", "empty.h5", lambda p: p.write_bytes(b""),
     ["reconstruct", "empty.h5", *R], "the file is empty", True, 2),
    ("not HDF5 (a text file)", "notes.h5", lambda p: p.write_text("qx qz I\n1 2 3\n"),
     ["reconstruct", "notes.h5", *R], "not an HDF5/NeXus file", True, 2),
    ("truncated HDF5 (half-copied)", "half.h5", truncated,
     ["reconstruct", "half.h5", *R], "truncated", True, 2),
    ("HDF5 without an NXdata group", "plain.h5", no_nxdata,
     ["reconstruct", "plain.h5", *R], "no NXdata group", True, 2),
    ("NXdata without a signal attribute", "nosignal.h5", lambda p: nexus(p, signal_attr=None),
     ["reconstruct", "nosignal.h5", *R], "has no 'signal' attribute", True, 2),
    ("signal names a missing dataset", "dangling.h5", lambda p: nexus(p, signal_attr="I"),
     ["reconstruct", "dangling.h5", *R], "names signal 'I', which does not exist", True, 2),
    ("1-D signal", "line.h5", lambda p: nexus(p, SIM.intensity[:, 0], [Q[0]]),
     ["reconstruct", "line.h5", *R], "has 1 dimension(s)", True, 2),
    ("4-D signal", "stack.h5",
     lambda p: nexus(p, np.ones((4, 4, 4, 4)), [(f"q{i}", np.arange(4.)) for i in range(4)],
                     units=["1/angstrom"] * 4),
     ["reconstruct", "stack.h5", *R], "has 4 dimension(s)", True, 2),
    ("complex signal", "complex.h5", lambda p: nexus(p, SIM.intensity.astype(complex)),
     ["reconstruct", "complex.h5", *R], "expected real numbers", True, 2),
    ("signal too small", "tiny.h5",
     lambda p: nexus(p, np.ones((3, 3)) + np.eye(3),
                     [("qx", np.arange(3.)), ("qz", np.arange(3.))]),
     ["reconstruct", "tiny.h5", *R], "too small", True, 2),
    ("no axes attribute", "noaxes.h5", lambda p: nexus(p, axes_attr=[".", "."]),
     ["reconstruct", "noaxes.h5", *R], "gives no axis for dimension 0", True, 2),
    ("axes attribute lists too few axes", "fewaxes.h5", lambda p: nexus(p, axes_attr=["qx"]),
     ["reconstruct", "fewaxes.h5", *R], "lists 1 axes for a 2-D signal", True, 2),
    ("axis named but missing", "lostaxis.h5", lambda p: nexus(p, axes_attr=["qx", "qy"]),
     ["reconstruct", "lostaxis.h5", *R], "axis 'qy' named in /entry/data is missing", True, 2),
    ("axis of the wrong length", "short.h5", lambda p: nexus(p, axes=[Q[0], ("qz", SIM.q[1][:-2])]),
     ["reconstruct", "short.h5", *R], "axis 'qz' has 30 values but the signal has 32", True, 2),
    ("non-monotonic axis", "zigzag.h5", lambda p: nexus(p, axes=zigzag()),
     ["reconstruct", "zigzag.h5", *R], "axis 'qz' is not monotonic", True, 2),
    ("NaN in an axis", "nanaxis.h5",
     lambda p: nexus(p, axes=[Q[0], ("qz", np.where(np.arange(32) == 5, np.nan, SIM.q[1]))]),
     ["reconstruct", "nanaxis.h5", *R], "axis 'qz' holds NaN or infinite values", True, 2),
    ("axis in unknown units", "mm.h5", lambda p: nexus(p, units=("mm", "1/angstrom")),
     ["reconstruct", "mm.h5", *R], "axis 'qx' has units 'mm'", True, 2),
    ("axis without units", "nounits.h5",
     lambda p: nexus(p, axes=[("a", SIM.q[0]), ("b", SIM.q[1])], units=(None, None)),
     ["reconstruct", "nounits.h5", *R], "axis 'a' has no 'units' attribute", True, 2),
    ("r.l.u. axes without lattice constants", "hkl.h5",
     lambda p: nexus(p, axes=[("H", SIM.q[0] / 2), ("L", SIM.q[1] / 2)], units=("rlu", "rlu")),
     ["reconstruct", "hkl.h5", *R], "no lattice constants are known", True, 2),
    ("NaN-only intensity", "nan.h5", lambda p: nexus(p, np.full(SIM.shape, np.nan)),
     ["reconstruct", "nan.h5", *R], "NaN (or infinite) everywhere", True, 2),
    ("all-zero intensity", "zero.h5", lambda p: nexus(p, np.zeros(SIM.shape)),
     ["reconstruct", "zero.h5", *R], "zero everywhere", True, 2),
    ("negative intensity everywhere", "negative.h5", lambda p: nexus(p, -1 - SIM.intensity),
     ["reconstruct", "negative.h5", *R], "negative (or zero) everywhere", True, 2),
    ("mostly negative (signed) intensity", "signed.h5",
     lambda p: nexus(p, SIM.intensity - SIM.intensity.mean()),
     ["reconstruct", "signed.h5", *R], "have negative intensity", True, 2),
    ("constant intensity", "flat.h5", lambda p: nexus(p, np.full(SIM.shape, 3.0)),
     ["reconstruct", "flat.h5", *R], "constant (3) everywhere", True, 2),
    ("mask of the wrong shape", "badmask.h5", lambda p: nexus(p, mask=SIM.mask.T),
     ["reconstruct", "badmask.h5", *R], "the mask has shape (32, 64)", True, 2),
    ("mask that is not boolean", "floatmask.h5", lambda p: nexus(p, mask=SIM.mask * 0.5),
     ["reconstruct", "floatmask.h5", *R], "expected booleans", True, 2),
    ("every pixel masked", "allmasked.h5", lambda p: nexus(p, mask=np.ones(SIM.shape, bool)),
     ["reconstruct", "allmasked.h5", *R], "every pixel is masked", True, 2),
    ("--data path that does not exist", "good.h5", good,
     ["reconstruct", "good.h5", "--data", "/entry/other", *R], "no group or dataset '/entry/other'",
     True, 2),
    (".npy without axes", "map.npy", lambda p: np.save(p, SIM.intensity),
     ["reconstruct", "map.npy", *R], "needs its axes", True, 2),
    (".npy with a non-numeric --axis", "map2.npy", lambda p: np.save(p, SIM.intensity),
     ["reconstruct", "map2.npy", "--axis", "qx", "-0.3", "x", "1/angstrom",
      "--axis", "qz", "2.9", "3.5", "1/angstrom", *R], "START and STOP must be numbers", False, 2),
    ("damaged .npz", "broken.npz", lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"),
     ["reconstruct", "broken.npz", *R], "cannot read the NumPy file", True, 2),
    ("unknown parameter name", "good2.h5", good,
     ["reconstruct", "good2.h5", "-p", "n_start", "4", *R], "unknown parameter 'n_start'",
     False, 2),
    ("parameter of the wrong type", "good3.h5", good,
     ["reconstruct", "good3.h5", "-p", "n_starts", "many", *R],
     "parameter 'n_starts' must be of type int, got 'many'", False, 2),
    ("parameter out of range", "good4.h5", good,
     ["reconstruct", "good4.h5", "-p", "beta", "2", *R], "parameter 'beta' must be <= 1.0",
     False, 2),
    ("parameter not one of its choices", "good5.h5", good,
     ["reconstruct", "good5.h5", "-p", "precision", "quad", *R],
     "parameter 'precision' must be one of single, double", False, 2),
    ("malformed unit cell", "good6.h5", good,
     ["reconstruct", "good6.h5", "-p", "unit_cell", "a,b", *R], "unit_cell must be", False, 2),
    ("negative seed", "good7.h5", good,
     ["reconstruct", "good7.h5", "--seed", "-1", *R], "--seed must be >= 0", False, 2),
    ("seed that is not a number", "good8.h5", good,
     ["reconstruct", "good8.h5", "--seed", "x", *R], "invalid int value: 'x'", False, 2),
    ("result exists (no --force)", "good9.h5",
     lambda p: (good(p), p.with_name("old-result.h5").write_bytes(b"precious")),
     ["reconstruct", "good9.h5", "--out", "old-result.h5"], "the output file exists", False, 2),
    ("output is a directory", "good10.h5",
     lambda p: (good(p), p.with_name("outdir").mkdir()),
     ["reconstruct", "good10.h5", "--out", "outdir"], "the output path is a directory", False, 2),
    ("output folder cannot be created", "good11.h5",
     lambda p: (good(p), p.with_name("blocker").write_text("a file, not a folder")),
     ["reconstruct", "good11.h5", "--out", "blocker/sub/result.h5"],
     "cannot create the output folder: a file is in the way (blocker)", False, 2),
    ("missing INPUT / --out", "none", None, ["reconstruct"], "the following arguments are required",
     False, 2),
    ("`run` with a missing file", "gone.h5", None, ["run", "gone.h5", "--out", "report"],
     "gone.h5", True, 2),
    ("`run` with an unknown parameter", "none", None,
     ["run", "--out", "report", "-p", "colour", "red"], "colour", False, 2),
    # warnings: the map can still be imaged
    ("a few negative pixels (warning)", "fewneg.h5", few_negative, ["check", "fewneg.h5"],
     "warning: 3 pixels have negative intensity", False, 0),
    ("QM2 wrapper whose linked file is missing", "film_300K.nxs", qm2_missing_link,
     ["reconstruct", "film_300K.nxs", "--hkl", "0", "0", "2", *R],
     "is an external link to 300K/transform.nxs:/entry/data/v, and that file is missing",
     True, 2),
    ("external links that loop", "loop.nxs", link_loop, ["reconstruct", "loop.nxs", *R],
     "form a loop", True, 2),
    (".xrdml without a wavelength", "nowl.xrdml", xrdml_without_wavelength,
     ["reconstruct", "nowl.xrdml", *R], "states no wavelength", True, 2),
    ("axes in degrees without a wavelength", "angles.h5", angles_without_wavelength,
     ["check", "angles.h5"], "needs the X-ray wavelength", True, 2),
    ("saturated Bragg peak (warning)", "saturated.h5", saturated, ["check", "saturated.h5"],
     "warning: 5 pixels sit at the maximum value", False, 0),
    ("out-of-plane axis undecidable (warning)", "blob.h5", blob, ["check", "blob.h5"],
     "warning: cannot tell the out-of-plane axis", False, 0),
]


def _run(case, folder: Path):
    name, filename, build, args, *_ = case
    if build is not None:
        build(folder / filename)
    proc = subprocess.run([sys.executable, "-m", "nanotools", *args], cwd=folder,
                          capture_output=True, text=True, timeout=120)
    return proc


def run_cases(root: Path) -> list:
    """Every case in its own folder under ``root``: (case, folder, process)."""
    folders = [root / f"case{i}" for i in range(len(CASES))]
    for folder in folders:
        folder.mkdir()
    with ThreadPoolExecutor(max_workers=4) as pool:
        procs = list(pool.map(_run, CASES, folders))
    return list(zip(CASES, folders, procs))


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return run_cases(tmp_path_factory.mktemp("cases"))


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c[0] for c in CASES])
def test_case(outcomes, index):
    (name, filename, _, args, fragment, names_file, status), folder, proc = outcomes[index]
    err = proc.stderr.strip()
    assert proc.returncode == status, err
    assert "Traceback" not in proc.stderr
    if status == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert fragment in lines[0], err
        if names_file:
            assert filename in lines[0], err
        # nothing half-written: no result, no temporary file, no checkpoint
        expected = {filename, "old-result.h5", "outdir", "blocker"}
        leftovers = {p.name for p in folder.iterdir()} - expected
        assert not leftovers, leftovers
        if (folder / "old-result.h5").exists():
            assert (folder / "old-result.h5").read_bytes() == b"precious"
    else:
        assert fragment in err, err
        assert all(line.startswith("warning: ") for line in err.splitlines()), err


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table(outcomes) -> str:
    """docs/bad-input.md from what the commands printed."""
    rows = []
    for (name, _, _, args, *_), _, proc in outcomes:
        command = "nanotools " + " ".join(shlex.quote(a) for a in args)
        message = " / ".join(line for line in proc.stderr.strip().splitlines())
        rows.append(f"| {_cell(name)} | `{_cell(command)}` | {proc.returncode} | "
                    f"{_cell(message)} |")
    return ("# Bad input and what nanotools says\n\n"
            "Generated by `make docs` (`python tests/test_bad_input.py`), which runs every\n"
            "case of `tests/test_bad_input.py` through the real command line (do not edit\n"
            "by hand). Errors exit with status 2 and print one\n"
            "line `error: ...` naming the problem and the file, with no traceback and nothing\n"
            "written; warnings (exit 0 here, from `nanotools check`) mean the map can still\n"
            "be imaged, and `nanotools reconstruct` prints the same warnings.\n\n"
            "| case | command | exit | message |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")


def test_docs_table_has_not_drifted(outcomes):
    """docs/bad-input.md is what the commands print now (the test never
    rewrites it: `make docs` does)."""
    assert DOC.read_text() == render_table(outcomes), (
        "docs/bad-input.md is out of date: run `make docs` and commit it")


if __name__ == "__main__":  # `make docs`
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        DOC.write_text(render_table(run_cases(Path(scratch))))
    print(f"wrote {DOC}")
