"""A real browser: report.html and the JupyterLab widget panels in headless
Chromium (Debian's ``chromium`` with playwright's Python API).

Marked ``browser``; CI runs them (``make test`` deselects only ``slow``).
Screenshots are kept in ``test-artifacts/`` (git-ignored) for a person to
look at.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nanotools import report

from _demo_report import OVERRIDES, demo_report

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _ensure_chromium() -> str:
    """Debian's chromium, installed with apt-get if it is missing (CI runs as root)."""
    if not Path(CHROMIUM).exists() and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
    assert Path(CHROMIUM).exists(), "chromium is missing and apt-get could not install it"
    return CHROMIUM


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = _ensure_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=path, args=ARGS)
        yield chromium
        chromium.close()


def test_report_renders_every_figure(browser, tmp_path_factory):
    out, proc = demo_report(tmp_path_factory.mktemp("demo"))
    assert proc.returncode == 0, proc.stderr
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto((out / "report.html").as_uri())
    page.wait_for_load_state("load")
    sizes = page.evaluate("""() => Object.fromEntries(
        Array.from(document.querySelectorAll('figure[data-figure]')).map(
            f => [f.dataset.figure, [f.querySelector('img').naturalWidth,
                                     f.querySelector('img').naturalHeight]]))""")
    for name in report.REQUIRED_FIGURES:
        width, height = sizes[name]
        assert width > 300 and height > 150, (name, width, height)
    n_starts = page.locator('#parameters td[data-name="n_starts"]').inner_text()
    assert n_starts == OVERRIDES["n_starts"]
    assert page.locator("#provenance td[data-name='input_sha256']").inner_text()
    assert page.locator("section.stage h1").count() == 5
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    page.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on loopback, serving a folder with the phasing notebook
    and the stage file it reads."""
    from nanotools import io, preprocess, simulate

    root = tmp_path_factory.mktemp("lab")
    shutil.copy(report.stage_notebooks()[2], root / "03_phasing.ipynb")
    simulation = simulate.simulate_map("laminate", shape=(64, 32), pixel_nm=2.0,
                                       thickness_nm=16.0, total_counts=1e7, seed=0)
    (root / "stages").mkdir()
    io.save_stage(root / "stages" / "prepared.h5", preprocess.prepare(simulation.rsm))
    # start the notebook's kernel without asking which (the question is a
    # modal dialog that a fresh setup may show at any moment), and keep every
    # cell in the page, in view or not (so the panel can be found wherever
    # Run All left the view)
    tracker = root / ".lab-settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(
        '{"autoStartDefaultKernel": true, "windowingMode": "none"}')
    # a fresh setup compiles every module on first import: do that for the
    # kernel's imports now, not while the page waits for the kernel
    subprocess.run([sys.executable, "-c", "import ipykernel.kernelapp, ipywidgets, "
                    "matplotlib.pyplot, nanotools.widgets, nanotools.phasing"], check=True)
    port, token = _free_port(), "nanotools-test"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(root / ".jupyter"),
           "JUPYTERLAB_SETTINGS_DIR": str(root / ".lab-settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / ".lab-workspaces")}
    log = open(root / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", "--allow-root", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline and server.poll() is None:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.terminate()
        pytest.fail("JupyterLab did not start: " + (root / "lab.log").read_text()[-2000:])
    yield url, token
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


def test_jupyterlab_shows_the_phasing_panel_and_runs_it(browser, lab):
    url, token = lab
    # A cold first start of a fresh setup (every module compiled on first
    # import) sometimes leaves the page without a working kernel or widget
    # connection: JupyterLab replaces the kernel and drops the queued cells,
    # or the panel's widget never renders. A new page on the same, by then
    # warm, server is what a user would do, so up to three pages are tried;
    # what each failed one showed is kept in test-artifacts/.
    for attempt in range(3):
        page = _open_and_run_all(browser, url, token)
        panel = page.locator(".nanotools-panel")
        try:
            panel.wait_for(state="attached", timeout=120_000)
            break
        except Exception:  # noqa: BLE001 - playwright's timeout
            page.screenshot(path=str(ARTIFACTS / f"jupyterlab-phasing-attempt{attempt}.png"),
                            full_page=True)
            page.close()
            if attempt == 2:
                raise
    try:
        _drive_the_panel(page, panel)
    finally:  # what the page showed, pass or fail
        page.screenshot(path=str(ARTIFACTS / "jupyterlab-phasing.png"), full_page=True)
        page.close()


def _open_and_run_all(browser, url, token):
    """A page with the phasing notebook, told to run all its cells."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # JupyterLab may ask which kernel to start, at any moment of a fresh
    # setup and sometimes twice (dialogs stacked): whenever one is in the
    # way, take the kernel it proposes, and look again before the next action
    page.add_locator_handler(page.locator(".jp-Dialog").first,
                             lambda dialog: dialog.locator(".jp-mod-accept").first.click(),
                             no_wait_after=True)
    page.goto(f"{url}/lab/tree/03_phasing.ipynb?token={token}")
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=60_000)
    # the kernel may still be connecting when the page says idle (Run All
    # is then ignored): run all again until the first cell has run
    deadline = time.time() + 90
    while True:
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('.jp-InputPrompt'))"
                ".some(p => p.innerText.includes('[1]'))", timeout=15_000)
            return page
        except Exception:  # noqa: BLE001 - playwright's timeout: try again
            if time.time() > deadline:
                return page  # the caller finds no panel and opens another page


def _drive_the_panel(page, panel):
    panel.scroll_into_view_if_needed()
    # the controls of the phasing stage, the run button and the live plot
    from nanotools.params import PARAMETERS

    labels = [PARAMETERS[n].label for n in ("n_starts", "algorithm", "beta")] + ["seed"]
    for label in labels:  # the readable labels, not the raw names
        assert panel.locator(".widget-label", has_text=label).count() >= 1, label
    assert panel.locator(".jupyter-matplotlib, .widget-image").count() >= 1
    status = panel.locator(".widget-html").last
    page.wait_for_function("el => el.innerText.includes('starts x')",
                           arg=status.element_handle(), timeout=60_000)
    # the static figures below the panel
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-OutputArea-output img').length >= 2",
        timeout=60_000)
    before = status.inner_text()
    starts = panel.locator(".widget-text", has=page.locator(".widget-label",
                                                            has_text=labels[0])).locator("input")
    starts.fill("2")
    starts.press("Enter")
    panel.locator("button", has_text="Run").click()
    page.wait_for_function("el => el.innerText.includes('2 starts x') && "
                           "el.innerText.includes(' s)')",
                           arg=status.element_handle(), timeout=90_000)
    assert status.inner_text() != before
    panel.screenshot(path=str(ARTIFACTS / "jupyterlab-phasing-panel.png"))
