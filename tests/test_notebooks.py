"""The teaching notebooks: stored clean, complete as a lab, and executed from a copy without writing anywhere else."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from pdbviz._notebooks import OUTPUT_ENV, OUTPUT_FOLDER, output_folder, packaged_notebooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: a hang guard only: a cell that runs this long is stuck, not slow
CELL_TIMEOUT = 600
#: the metadata a notebook keeps; anything else (widget state, editor or Colab settings) is volatile
NOTEBOOK_METADATA = {"kernelspec", "language_info"}
CELL_METADATA = {"tags", "jupyter"}


def _cells(path, kind=None):
    nb = nbformat.read(path, as_version=4)
    return [c for c in nb.cells if kind is None or c.cell_type == kind]


def test_the_teaching_notebooks_exist():
    assert [p.stem for p in NOTEBOOKS] == ["01_quantization_basics", "02_feature_separability",
                                         "03_bit_allocation_explorer", "04_paper_figures", "05_which_metric",
                                         "06_lab_training_and_transformers"]


def clean_problems(text: str) -> list[str]:
    """What keeps a stored notebook from being clean: outputs, counts, volatile metadata, or a form that
    JupyterLab would rewrite on save (so that opening it would mark it modified)."""
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    problems = []
    if text != nbformat.writes(nb) + "\n":
        problems.append("not in the form the Jupyter server writes (indent 1, sorted keys, final newline)")
    if (nb.nbformat, nb.nbformat_minor) != (4, 5):
        problems.append(f"nbformat {nb.nbformat}.{nb.nbformat_minor}, not 4.5")
    if set(nb.metadata) != NOTEBOOK_METADATA:
        problems.append(f"notebook metadata {sorted(nb.metadata)}")
    if nb.metadata.get("kernelspec") != {"display_name": "Python 3 (ipykernel)", "language": "python",
                                         "name": "python3"}:
        problems.append("a kernelspec other than the one ipykernel installs")
    for i, c in enumerate(nb.cells):
        if c.cell_type == "code" and (c.outputs or c.execution_count is not None):
            problems.append(f"cell {i} has outputs or an execution count")
        if set(c.metadata) - CELL_METADATA:
            problems.append(f"cell {i} metadata {sorted(set(c.metadata) - CELL_METADATA)}")
    if len({c.id for c in nb.cells}) != len(nb.cells):
        problems.append("cell ids repeat")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_as_jupyterlab_saves_it_without_outputs(path):
    text = path.read_text(encoding="utf-8")
    assert clean_problems(text) == []
    nb = nbformat.reads(text, as_version=4)
    assert nb.metadata.language_info["name"] == "python" and nb.metadata.language_info["pygments_lexer"] == "ipython3"
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 3, f"{path.name} needs teaching prose"


def test_outputs_volatile_metadata_and_another_layout_are_found():
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.execution_count = 1
    code.outputs = [nbformat.v4.new_output("stream", text="hi")]
    code.metadata["collapsed"] = False
    nb.metadata["widgets"] = {}
    problems = clean_problems(nbformat.writes(nb) + "\n")
    assert any("outputs" in p for p in problems) and any("'collapsed'" in p for p in problems)
    assert any("'widgets'" in p for p in problems)
    compact = json.dumps(json.loads(NOTEBOOKS[0].read_text(encoding="utf-8")))
    assert clean_problems(compact) == ["not in the form the Jupyter server writes (indent 1, sorted keys, final newline)"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_opens_with_its_title_setup_and_a_colab_install_cell(path):
    cells = _cells(path)
    title, install = cells[0], cells[1]
    assert title.cell_type == "markdown" and title.source.startswith("# ")
    assert "pip install -e ." in title.source and "download.pytorch.org/whl/cpu" in title.source
    assert "pdbviz-output" in title.source  # says where its files go
    assert install.cell_type == "code"
    assert 'find_spec("google.colab") is not None' in install.source and "pip" in install.source
    assert "enable_custom_widget_manager" in install.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_predictions_and_exercises_with_hidden_solutions(path):
    cells = _cells(path)
    assert any(c.cell_type == "markdown" and c.source.startswith("**Predict before you run:**") for c in cells)
    exercises = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("**Exercise ")]
    assert len(exercises) >= 2, path.name
    for i in exercises:
        solution = cells[i + 1]
        assert solution.cell_type == "code" and solution.metadata.get("tags") == ["solution"], (path.name, i)
        assert solution.metadata.get("jupyter", {}).get("source_hidden") is True and solution.source.strip()


def test_output_folder_stays_out_of_the_packaged_notebooks_and_the_package(tmp_path, monkeypatch):
    monkeypatch.delenv(OUTPUT_ENV, raising=False)
    assert output_folder("x", cwd=tmp_path) == tmp_path.resolve() / OUTPUT_FOLDER / "x"
    for inside in (packaged_notebooks(), ROOT / "pdbviz"):
        out = output_folder("x", cwd=inside)
        assert inside.resolve() not in out.parents and out.is_dir()
    monkeypatch.setenv(OUTPUT_ENV, str(tmp_path / "elsewhere"))
    assert output_folder("y", cwd=packaged_notebooks()) == (tmp_path / "elsewhere" / "y").resolve()
    for bad in ("", "a/b", "..", 3):
        with pytest.raises(ValueError, match="name must be one folder name"):
            output_folder(bad)


def _snapshot(*folders):
    """Every file under ``folders`` (bytecode caches aside) with the hash of its content."""
    files = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                files[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return files


#: the first notebook runs in every test run; the others are marked ``notebooks`` (``pytest -m notebooks``), and the
#: documentation build executes every notebook as well
EXECUTED = [pytest.param(p, id=p.stem, marks=() if i == 0 else pytest.mark.notebooks) for i, p in enumerate(NOTEBOOKS)]


@pytest.mark.slow
@pytest.mark.parametrize("path", EXECUTED)
def test_notebook_runs_from_a_copy_and_writes_only_into_its_output_folder(path, tmp_path):
    work = tmp_path / "pdbviz-notebooks"
    work.mkdir()
    copy = work / path.name
    shutil.copyfile(path, copy)
    before = _snapshot(ROOT / "notebooks", ROOT / "pdbviz")
    nb = nbformat.read(copy, as_version=4)
    env = {k: v for k, v in os.environ.items() if k != OUTPUT_ENV}
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}})
    client.execute(env=env, cwd=str(work))
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    solutions = [c for c in nb.cells if c.metadata.get("tags") == ["solution"]]
    assert solutions and all(c.execution_count is not None and c.outputs for c in solutions)
    assert _snapshot(ROOT / "notebooks", ROOT / "pdbviz") == before
    assert {p.name for p in work.iterdir()} <= {path.name, OUTPUT_FOLDER}
    if "output_folder(" in "".join(c.source for c in nb.cells):
        assert any((work / OUTPUT_FOLDER / path.stem).iterdir())
    assert copy.read_bytes() == path.read_bytes()  # running it did not save it


@pytest.fixture
def jupyterlab_on_copies(tmp_path):
    """JupyterLab on 127.0.0.1 serving copies of the notebooks, with its own config, data and workspace folders."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    work = tmp_path / "notebooks"
    work.mkdir()
    for path in NOTEBOOKS:
        shutil.copyfile(path, work / path.name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "pdbviz-test-" + os.urandom(8).hex()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"), JUPYTER_DATA_DIR=str(tmp_path / "data"))
    env.pop("JUPYTER_PATH", None)
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=", "--ServerApp.port_retries=0"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = tmp_path / "jupyterlab.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + CELL_TIMEOUT
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=60) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n" + log_path.read_text()[-3000:])
                time.sleep(0.5)
            yield url, token, work
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.mark.browser
def test_jupyterlab_opens_every_notebook_unmodified_with_its_solutions_folded(jupyterlab_on_copies, require_chromium):
    from playwright.sync_api import sync_playwright

    url, token, work = jupyterlab_on_copies
    stored = {p.name: p.read_bytes() for p in work.glob("*.ipynb")}
    seen = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=require_chromium, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab?token={token}", wait_until="domcontentloaded")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.hasCommand('docmanager:open')",
                                   timeout=CELL_TIMEOUT * 1000)
            page.evaluate("async () => { await window.jupyterapp.restored; return true; }")
            for name in sorted(stored):
                page.evaluate(f"async () => {{ await window.jupyterapp.commands.execute('docmanager:open', {{path: {name!r}}});"
                              " return true; }")
                page.wait_for_function(
                    f"() => {{ const w = window.jupyterapp.shell.currentWidget;"
                    f" return w && w.context && w.context.path === {name!r} && w.sessionContext.session"
                    f" && w.sessionContext.session.kernel"
                    f" && w.sessionContext.session.kernel.connectionStatus === 'connected'"
                    f" && w.sessionContext.session.kernel.status === 'idle'; }}", timeout=CELL_TIMEOUT * 1000)
                page.wait_for_timeout(2000)  # kernel info and spec reach the notebook's metadata
                seen[name] = page.evaluate(
                    "() => { const w = window.jupyterapp.shell.currentWidget;"
                    " const cells = w.content.widgets.filter(c => (c.model.getMetadata('tags') || []).includes('solution'));"
                    " return {dirty: w.context.model.dirty, solutions: cells.length,"
                    " folded: cells.filter(c => c.inputHidden).length}; }")
                page.evaluate("async () => { const w = window.jupyterapp.shell.currentWidget;"
                              " await w.sessionContext.shutdown(); w.dispose(); }")  # no save, no prompt
        finally:
            browser.close()
    import platform

    for name, state in seen.items():
        stored_python = json.loads(stored[name])["metadata"]["language_info"]["version"]
        assert state["dirty"] is False, (f"{name} is marked modified on open (it stores the language_info of Python "
                                         f"{stored_python}, the kernel runs {platform.python_version()})")
        assert state["solutions"] >= 2 and state["folded"] == state["solutions"], (name, state)
    assert {p.name: p.read_bytes() for p in work.glob("*.ipynb")} == stored


def test_the_docs_gallery_folds_the_solutions_and_nothing_else():
    import sys

    pytest.importorskip("sphinx")
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    import pdbviz_notebooks

    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    solutions = [i for i, c in enumerate(nb.cells) if "solution" in c.metadata.get("tags", [])]
    assert pdbviz_notebooks.fold_solutions(nb) == len(solutions) >= 2
    assert [i for i, c in enumerate(nb.cells) if "hide-input" in c.metadata.get("tags", [])] == solutions
    assert pdbviz_notebooks.fold_solutions(nb) == 0  # tagged once


def test_the_gallery_gives_each_notebooks_measured_execution_time():
    import sys

    pytest.importorskip("sphinx")
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    import pdbviz_notebooks

    page = pdbviz_notebooks.gallery_index(NOTEBOOKS[:2], {NOTEBOOKS[0].name: 12.4})
    assert "*Executed in 12 s when this site was built.*" in page and page.count("Executed in") == 1
    assert "Executed in" not in pdbviz_notebooks.gallery_index(NOTEBOOKS[:2])
