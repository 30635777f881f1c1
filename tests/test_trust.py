"""Trust: an interrupted run resumes to the same result; a rerun is bit-identical.

Both run the real ``nanotools reconstruct`` in a subprocess on a small map
(128 x 64, a few hundred iterations) so they take seconds.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

pytest.importorskip("nanotools.preprocess")
pytest.importorskip("nanotools.patterns")

from nanotools.io import read_result, write_map  # noqa: E402
from nanotools.pipeline import checkpoint_dir, reconstruct_file  # noqa: E402
from nanotools.simulate import simulate_map  # noqa: E402

# Small but real: 8 starts, one per checkpointed chunk.
PARAMS = ["-p", "n_starts", "8", "-p", "algorithm", "RAAR**150 ER**50", "-p", "n_clusters", "2",
          "-p", "keep_runs", "4"]
# Provenance that differs between two runs by nature (clock, where it ran).
VOLATILE = {"/entry/process/date", "/entry/process/wall_time_s",
            "/entry/process/phasing_time_s", "/entry/process/notes",
            "/entry/process/input_file"}


@pytest.fixture(scope="module")
def map_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("input") / "laminate.h5"
    # a film that fits twice in the 64 nm window along z (thinner than 32 nm),
    # or its thickness cannot be measured
    write_map(path, simulate_map("laminate", shape=(128, 64), thickness_nm=24.0, seed=5).rsm)
    return path


def _cli(*args) -> list:
    return [sys.executable, "-m", "nanotools", *map(str, args)]


def _datasets(path: Path) -> dict:
    out = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out["/" + name] = obj[()]

    with h5py.File(path, "r") as h5:
        h5.visititems(visit)
    return out


def _assert_same_result(a: Path, b: Path) -> None:
    da, db = _datasets(a), _datasets(b)
    assert set(da) == set(db)
    for name in sorted(set(da) - VOLATILE):
        x, y = np.asarray(da[name]), np.asarray(db[name])
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), f"{name} differs"


def test_same_input_params_seed_give_bit_identical_results(tmp_path, map_file):
    first, second = tmp_path / "a" / "result.h5", tmp_path / "b" / "result.h5"
    for out in (first, second):
        proc = subprocess.run(_cli("reconstruct", map_file, "--out", out, "--seed", 7,
                                   "--no-progress", *PARAMS), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    _assert_same_result(first, second)
    result = read_result(first)
    assert result["process"]["seed"] == 7 and result["process"]["n_starts"] == 8
    assert result["process"]["parameters"]["algorithm"] == "RAAR**150 ER**50"
    assert len(result["process"]["input_sha256"]) == 64
    assert result["runs"]["objects"].shape[0] == 4
    # another seed gives another answer: the comparison above can fail
    other = tmp_path / "c" / "result.h5"
    reconstruct_file(map_file, other, {"n_starts": 8, "algorithm": "RAAR**150 ER**50",
                                       "n_clusters": 2, "keep_runs": 4}, seed=8, progress=False)
    assert _datasets(other)["/entry/runs/fourier_error"].tobytes() != \
        _datasets(first)["/entry/runs/fourier_error"].tobytes()


def test_sigterm_mid_phasing_then_resume_equals_uninterrupted(tmp_path, map_file):
    out = tmp_path / "run" / "result.h5"
    folder = checkpoint_dir(out)
    proc = subprocess.Popen(_cli("reconstruct", map_file, "--out", out, "--no-progress",
                                 *PARAMS), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(folder.glob("starts_*.h5"))) < 2:
        assert proc.poll() is None, "finished before it could be interrupted"
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("error: terminated")
    assert "Traceback" not in err
    assert not out.exists()  # no result, and no half-written one under any name
    assert [p.name for p in out.parent.iterdir()] == [folder.name]
    saved = len(list(folder.glob("starts_*.h5")))
    assert 2 <= saved < 8

    rerun = subprocess.run(_cli("reconstruct", map_file, "--out", out, "--no-progress", *PARAMS),
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert not folder.exists()  # the checkpoint is removed with the result written
    notes = read_result(out)["process"]["notes"]
    assert any(n.startswith("resumed from a checkpoint with") for n in notes), notes

    reference = tmp_path / "reference" / "result.h5"
    done = subprocess.run(_cli("reconstruct", map_file, "--out", reference, "--no-progress",
                               *PARAMS), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    _assert_same_result(out, reference)


def test_checkpoint_of_another_run_is_not_reused(tmp_path, map_file):
    params = {"n_starts": 4, "algorithm": "RAAR**40 ER**10", "n_clusters": 2}
    out = tmp_path / "result.h5"
    folder = checkpoint_dir(out)
    # leave a finished checkpoint of seed 1 behind, as an interrupted run would
    from nanotools import pipeline

    real = pipeline.write_result

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    pipeline.write_result = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            reconstruct_file(map_file, out, params, seed=1, progress=False, chunk_size=1)
    finally:
        pipeline.write_result = real
    assert len(list(folder.glob("starts_*.h5"))) == 4 and not out.exists()
    rec = reconstruct_file(map_file, out, params, seed=2, progress=False, chunk_size=1)
    assert not any("resumed" in n for n in rec.notes)  # seed 2 recomputed everything
    fresh = reconstruct_file(map_file, tmp_path / "fresh.h5", params, seed=2, progress=False)
    assert rec.phasing.fourier_error.tobytes() == fresh.phasing.fourier_error.tobytes()
    # an existing result is never overwritten without force
    from nanotools.errors import InputError

    before = out.read_bytes()
    with pytest.raises(InputError, match="exists; pass --force"):
        reconstruct_file(map_file, out, params, seed=3, progress=False)
    assert out.read_bytes() == before
