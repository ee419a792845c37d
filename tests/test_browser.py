"""A real browser: JupyterLab on 127.0.0.1, notebook 03 in headless Chromium, slider, Train, new run."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "03_bit_allocation_explorer.ipynb"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    work = tmp_path / "notebooks"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, work / NOTEBOOK)  # the run must not write into the repository
    port, token = _free_port(), "pdbviz-test-" + os.urandom(8).hex()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"), JUPYTER_DATA_DIR=str(tmp_path / "data"))
    env.pop("JUPYTER_PATH", None)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=", "--ServerApp.port_retries=0"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=60) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                raise RuntimeError("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url, token, work
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.mark.browser
def test_bit_allocator_in_jupyterlab(jupyterlab, require_chromium, tmp_path):
    from playwright.sync_api import sync_playwright

    url, token, work = jupyterlab
    shot = tmp_path / "bit_allocator.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require_chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2200})
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}", wait_until="domcontentloaded")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                                   ".connectionStatus === 'connected'", timeout=120_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            train = page.locator("button.jupyter-button", has_text="Train").first
            train.wait_for(state="visible", timeout=120_000)
            history = page.locator("table.pdbviz-history tbody tr")
            # the notebook's own cell trains three runs from code
            page.wait_for_function("() => document.querySelectorAll('table.pdbviz-history tbody tr').length >= 3",
                                   timeout=180_000)
            assert history.count() == 3
            before_shot = tmp_path / "bit_allocator_before.png"
            page.screenshot(path=str(before_shot), full_page=True)
            schedule_box = page.locator(".widget-text input").first
            before = schedule_box.input_value()
            handles = page.locator(".widget-hslider .noUi-handle")
            handles.nth(4).focus()  # the third layer's weight-bits slider (w, a per layer)
            page.keyboard.press("ArrowLeft")
            page.wait_for_function(f"() => document.querySelector('.widget-text input').value !== {before!r}",
                                   timeout=120_000)
            after = schedule_box.input_value()
            page.wait_for_function("() => !document.evaluate(\"//button[contains(., 'Train')]\", document, null, 9,"
                                   " null).singleNodeValue.disabled", timeout=60_000)
            t0 = time.perf_counter()
            train.click()
            page.wait_for_function("() => document.querySelectorAll('table.pdbviz-history tbody tr').length >= 4",
                                   timeout=120_000)
            page.wait_for_function("() => Array.from(document.querySelectorAll('.scatterlayer .trace'))"
                                   ".some(t => t.querySelectorAll('.points path').length >= 4)", timeout=60_000)
            seconds = time.perf_counter() - t0
            # the run labels ("#1".."#4") lie inside the plot area and none covers another
            boxes = page.evaluate("""() => {
                const plots = Array.from(document.querySelectorAll('.js-plotly-plot')).filter(
                    p => Array.from(p.querySelectorAll('.textpoint text')).some(t => t.textContent.startsWith('#')));
                const plot = plots[plots.length - 1];
                const drawn = plot.querySelector('.draglayer .nsewdrag').getBoundingClientRect();
                const cell = plot.parentElement.getBoundingClientRect();  // what the page shows of the figure
                const area = {left: Math.max(drawn.left, cell.left), top: Math.max(drawn.top, cell.top),
                              right: Math.min(drawn.right, cell.right), bottom: Math.min(drawn.bottom, cell.bottom)};
                const labels = Array.from(plot.querySelectorAll('.textpoint text')).map(t => {
                    const b = t.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; });
                return {area: [area.left, area.top, area.right, area.bottom], labels};
            }""")
            x0, y0, x1, y1 = boxes["area"]
            labels = boxes["labels"]
            assert len(labels) >= 3
            for left, top, right, bottom in labels:
                assert x0 - 1 <= left and right <= x1 + 1 and y0 - 1 <= top and bottom <= y1 + 1, (boxes, left, top)
            for i, a in enumerate(labels):
                for b in labels[i + 1:]:
                    assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)
            rows = history.all_inner_texts()
            assert len(rows) == 4 and after in rows[3]
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    target = os.environ.get("PDBVIZ_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)
        shutil.copy(before_shot, Path(target) / before_shot.name)
        (Path(target) / "train_to_point_seconds.txt").write_text(f"{seconds:.2f}\n")
    print(f"Train press to new point: {seconds:.2f} s; schedule {before} -> {after}")


def _notebook(path: Path, cells: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _open_and_run(page, url, token, name):
    page.goto(f"{url}/lab/tree/{name}?token={token}", wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                           ".connectionStatus === 'connected'", timeout=120_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


_Y2_TICKS = "() => Array.from(document.querySelectorAll('.y2tick text')).map(t => t.textContent)"
_TITLE = "() => (document.querySelector('.gtitle') || {}).textContent || ''"


@pytest.mark.browser
def test_playground_axis_follows_the_slider_in_jupyterlab(jupyterlab, require_chromium, tmp_path):
    """The playground as a student sees it: after a slider move the title and the value axis's ticks change
    together, and the ticks drawn are the levels (one labelled tick per level up to nine)."""
    from playwright.sync_api import sync_playwright

    from pdbviz.widgets.playground import labelled_levels

    url, token, work = jupyterlab
    _notebook(work / "playground.ipynb", ["from pdbviz.widgets import QuantizerPlayground\n"
                                          "pg = QuantizerPlayground()\npg"])
    shots = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require_chromium, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            _open_and_run(page, url, token, "playground.ipynb")
            page.wait_for_function(f"() => ({_TITLE})().includes('2-bit DoReFa weights: 4 levels')",
                                   timeout=120_000)
            assert len(page.evaluate(_Y2_TICKS)) == 4
            shots.append(tmp_path / "playground_2bit.png")
            page.screenshot(path=str(shots[-1]))
            page.locator(".widget-hslider .noUi-handle").first.focus()
            page.keyboard.press("ArrowRight")  # 2 -> 3 bits
            page.wait_for_function(f"() => ({_TITLE})().startsWith('3-bit DoReFa weights: 8 levels')",
                                   timeout=120_000)
            page.wait_for_function(f"() => ({_Y2_TICKS})().length === 8", timeout=120_000)
            shots.append(tmp_path / "playground_3bit.png")
            page.screenshot(path=str(shots[-1]))
            for _ in range(3):
                page.keyboard.press("ArrowRight")  # 6 bits: 64 levels, eight of them labelled, symmetrically
            page.wait_for_function(f"() => ({_TITLE})().startsWith('6-bit DoReFa weights: 64 levels')",
                                   timeout=120_000)
            page.wait_for_function(f"() => ({_Y2_TICKS})().filter(t => t).length === {len(labelled_levels(64))}",
                                   timeout=120_000)
            shots.append(tmp_path / "playground_6bit.png")
            page.screenshot(path=str(shots[-1]))
        finally:
            browser.close()
    target = os.environ.get("PDBVIZ_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        for shot in shots:
            shutil.copy(shot, Path(target) / shot.name)
