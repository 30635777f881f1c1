"""The command line in-process: delegation, warnings, random arguments."""
from __future__ import annotations

import sys
import types

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nanotools import cli
from nanotools.io import write_map
from nanotools.params import PARAMETERS
from nanotools.simulate import simulate_map


@pytest.fixture(scope="module")
def map_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "map.h5"
    write_map(path, simulate_map("laminate", shape=(64, 32), seed=0).rsm)
    return path


def test_run_and_series_delegate_with_parsed_arguments(monkeypatch, capsys):
    calls = {}
    fake_report = types.ModuleType("nanotools.report")
    fake_report.run_report = lambda **kw: calls.setdefault("run", kw)
    fake_series = types.ModuleType("nanotools.series")
    fake_series.run_series = lambda **kw: calls.setdefault("series", kw)
    monkeypatch.setitem(sys.modules, "nanotools.report", fake_report)
    monkeypatch.setitem(sys.modules, "nanotools.series", fake_series)
    assert cli.main(["run", "--out", "rep", "-p", "n_starts", "4", "--seed", "3"]) == 0
    assert calls["run"] == dict(input_path=None, out_dir="rep", params={"n_starts": 4},
                                seed=3, force=False)
    assert cli.main(["series", "a.h5", "b.h5", "--out", "d", "--scheduler", "tcp://h:8786",
                     "--force", "-p", "beta", "0.5"]) == 0
    assert calls["series"] == dict(input_path=["a.h5", "b.h5"], out_dir="d",
                                   params={"beta": 0.5}, seed=0, force=True,
                                   scheduler="tcp://h:8786")


def test_missing_module_is_an_error_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nanotools.series", None)  # import fails
    assert cli.main(["series", "a.h5", "--out", "d"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_check_prints_summary_and_warnings(map_file, tmp_path, capsys):
    assert cli.main(["check", str(map_file)]) == 0
    out = capsys.readouterr().out
    assert "2-D map (64, 32)" in out and "out-of-plane axis 'qz'" in out


_names = st.sampled_from(sorted(PARAMETERS) + ["bogus", "", "n_starts "])
_values = st.one_of(st.text(max_size=6), st.integers(-5, 10**6).map(str),
                    st.floats(allow_nan=True).map(str))


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(_names, _values), max_size=3), seed=st.integers(-3, 3))
def test_random_parameters_give_status_0_or_2(map_file, capsys, pairs, seed):
    argv = ["check", str(map_file), "--seed", str(seed)]
    for name, value in pairs:
        argv += ["-p", name, value]
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status in (0, 2)
    if status == 2:
        assert err.startswith("error: ") and err.count("\n") == 1
