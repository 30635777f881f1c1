"""One CI-sized ``nanotools run`` shared by test_report.py and test_browser.py.

Running the five notebooks costs ~20 s, so the report is made once per test
session (memoised here, outside any one test module) through the real
command line, with overridden parameters that the tests then look for.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: CI-sized overrides: few starts and iterations; each must show up in the
#: report and in result.h5.
OVERRIDES = {"n_starts": "3", "algorithm": "RAAR**40 ER**20", "n_clusters": "2"}
SEED = 5

_cache: dict = {}


def demo_report(base: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """Run ``nanotools run --out base/report -p ... --seed 5`` once; return the
    report folder and the finished process."""
    if "run" not in _cache:
        out = base / "report"
        cmd = [sys.executable, "-m", "nanotools", "run", "--out", str(out), "--seed", str(SEED)]
        for name, value in OVERRIDES.items():
            cmd += ["-p", name, value]
        env = {**os.environ, "MPLBACKEND": "agg"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        _cache["run"] = (out, proc)
    return _cache["run"]
