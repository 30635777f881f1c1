"""The package as a user gets it: a wheel built from the repository and
installed in a fresh virtual environment runs ``nanotools run`` from a folder
outside the repository (the notebooks and widgets travel as package data and
a mapped package, with no symlink)."""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from _demo_report import OVERRIDES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # no build isolation: setuptools and wheel come with the test extra, so
    # the build needs no index and takes seconds
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True, cwd=out)
    (path,) = out.glob("nanotools-*.whl")
    return path


def test_wheel_holds_the_three_layers(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "nanotools/widgets/panels.py" in names
    assert "nanotools/notebooks/01_map.ipynb" in names
    assert "nanotools/data/example.h5" in names
    assert not any(n.startswith("widgets/") for n in names)  # never a bare top-level package


@pytest.mark.slow  # 62-77 s on the shared 2-core machine (five kernel starts); make test-all
def test_wheel_in_a_fresh_venv_runs_the_demo(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # install the wheel alone (pip of the test environment, aimed at the new one)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", str(wheel)], check=True)
    # then lend it the test environment's dependencies: a .pth adds that
    # site-packages after its own, and .pth files inside it (the editable
    # install of the checkout) are not processed, so nanotools is the wheel's
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], check=True, capture_output=True, text=True
                          ).stdout.strip()
    (Path(site) / "test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    where = subprocess.run([str(python), "-c", "import nanotools.widgets, nanotools.report as r;"
                            "print(nanotools.widgets.__file__); print(r.notebook_dir())"],
                           check=True, capture_output=True, text=True, cwd=work, env=env
                           ).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), where
    # the CI-sized overrides of the demo report: what is tested is the
    # installation (notebooks, widgets, template, example map), not the science
    overrides = [a for name, value in OVERRIDES.items() for a in ("-p", name, value)]
    run = subprocess.run([str(venv / "bin" / "nanotools"), "run", "--out", "demo", *overrides],
                         capture_output=True, text=True, cwd=work, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert (work / "demo" / "report.html").is_file()
    assert (work / "demo" / "result.h5").is_file()
