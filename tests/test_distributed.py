"""Distributed phasing on a real Dask cluster equals a local run.

A scheduler and two workers are started as subprocesses of the venv's
``dask`` command on 127.0.0.1 (one thread each), bounded in time and always
torn down. Marked ``dask``.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

distributed = pytest.importorskip("dask.distributed")

from nanotools.chunks import start_chunks  # noqa: E402
from nanotools.distributed import phase_retrieval_distributed  # noqa: E402
from nanotools.errors import ParameterError  # noqa: E402
from nanotools.phasing import phase_retrieval  # noqa: E402
from nanotools.simulate import simulate_map  # noqa: E402

from _small import prepared_from_truth  # noqa: E402

pytestmark = pytest.mark.dask


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_cli() -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    return [str(exe)] if exe.exists() else [shutil.which("dask") or "dask"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Address of a scheduler with two one-thread workers; torn down after."""
    tmp = tmp_path_factory.mktemp("dask")
    env = dict(os.environ, NANOTOOLS_FFT_WORKERS="1",
               NANOTOOLS_FFTW_WISDOM=str(tmp / "wisdom"), PYTHONUNBUFFERED="1")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    logs = []

    def start(args, name):
        log = open(tmp / f"{name}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(_dask_cli() + args, env=env, stdout=log,
                                      stderr=subprocess.STDOUT, cwd=tmp))

    try:
        start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
              "scheduler")
        for i in range(2):
            start(["worker", address, "--nthreads", "1", "--nworkers", "1", "--host",
                   "127.0.0.1", "--no-dashboard", "--memory-limit", "0",
                   "--local-directory", str(tmp / f"w{i}"), "--death-timeout", "60"],
                  f"worker{i}")
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=45)
        yield address, env
    finally:
        try:  # a clean shutdown is quicker than waiting for SIGTERM handlers
            with distributed.Client(address, timeout="5s") as client:
                client.shutdown()
        except Exception:
            pass
        for p in reversed(procs):
            p.terminate()
        deadline = time.monotonic() + 15
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def prepared():
    return prepared_from_truth(simulate_map("laminate", shape=(64, 32), period_nm=8,
                                            thickness_nm=10, patch_periods=4, seed=1))


def test_start_chunks():
    assert start_chunks(7, 3, start=2) == [(2, 3), (5, 3), (8, 1)]
    with pytest.raises(ParameterError):
        start_chunks(4, 0)


def test_distributed_equals_local(cluster, prepared, monkeypatch):
    address, env = cluster
    # the same shared FFTW wisdom as the workers, so the same plans
    monkeypatch.setenv("NANOTOOLS_FFTW_WISDOM", env["NANOTOOLS_FFTW_WISDOM"])
    kw = dict(seed=9, algorithm="HIO**30 RAAR**20 ER**10", shrink_wrap_every=10)
    local = phase_retrieval(prepared, n_starts=6, **kw)
    with distributed.Client(address, timeout="30s") as client:
        remote = phase_retrieval_distributed(prepared, client, n_starts=6, chunk=2, **kw)
        # both workers took part
        assert len(client.nthreads()) == 2
    assert np.array_equal(remote.start_indices, np.arange(6))
    for name in ("objects", "supports", "history", "fourier_error", "llk"):
        assert np.array_equal(getattr(remote, name), getattr(local, name)), name
    assert remote.parameters["n_starts"] == 6 and remote.parameters["chunk"] == 2


def test_distributed_rejects_a_backend_object(cluster, prepared):
    from nanotools.backend import get_backend
    with distributed.Client(cluster[0], timeout="30s") as client:
        with pytest.raises(ParameterError):
            phase_retrieval_distributed(prepared, client, n_starts=2,
                                        backend=get_backend("numpy"))


def test_series_on_the_cluster(cluster, tmp_path):
    """Three maps at three temperatures, given out of order: each is imaged,
    the series is ordered by temperature and its report written."""
    pytest.importorskip("nanotools.preprocess")
    pytest.importorskip("nanotools.patterns")
    import h5py

    from nanotools.io import read_map, write_map
    from nanotools.series import run_series, summarise_result
    paths = []
    for i, (temperature, period) in enumerate([(300.0, 8.0), (200.0, 10.0), (250.0, 8.0)]):
        rsm = simulate_map("laminate", shape=(128, 64), period_nm=period, thickness_nm=16,
                           patch_periods=4, total_counts=1e8, seed=i).rsm
        rsm.metadata["temperature_K"] = temperature
        paths.append(write_map(tmp_path / f"map{i}.h5", rsm))
    assert read_map(paths[0]).metadata["temperature_K"] == 300.0
    params = {"n_starts": 4, "algorithm": "HIO**60 RAAR**30 ER**20", "n_clusters": 2,
              "keep_runs": 2}
    out = tmp_path / "series"
    result = run_series(input_path=[str(p) for p in paths], out_dir=out, params=params, seed=3,
                        scheduler=cluster[0], report=False)
    assert result.variable_name == "temperature_K"
    assert [e.variable for e in result.entries] == [200.0, 250.0, 300.0]
    assert [Path(e.input_path).name for e in result.entries] == ["map1.h5", "map2.h5",
                                                                 "map0.h5"]
    with h5py.File(out / "series.h5", "r") as h5:
        g = h5["entry/series"]
        assert list(g["temperature_K"][...]) == [200.0, 250.0, 300.0]
        for i, e in enumerate(result.entries):
            s = summarise_result(e.result_path)
            assert g["period_nm"][i] == pytest.approx(s["period_nm"])
            assert g["displacement_amplitude"][i] == pytest.approx(s["displacement_amplitude_A"])
            assert list(g["cluster_populations"][i][:len(s["populations"])]) == s["populations"]
    # the measured period follows the maps (10 nm at 200 K, 8 nm elsewhere)
    periods = [e.period_nm for e in result.entries]
    assert periods[0] == pytest.approx(10.0, rel=0.1) and periods[2] == pytest.approx(8.0, rel=0.1)
    page = (out / "series.html").read_text()
    assert "data:image/png;base64," in page and "map1.h5" in page
