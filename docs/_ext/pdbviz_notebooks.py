"""The notebook gallery: execute ``notebooks/*.ipynb`` and let MyST-NB render them, offline.

The teaching notebooks are stored without outputs. Before Sphinx reads its
sources, every notebook is executed with ``nbclient`` (widget state saved), its
outputs made ready for a static page, and written to ``docs/gallery/`` beside a
generated ``gallery/index.md``; MyST-NB then renders those copies without
executing them again. A new notebook in ``notebooks/`` is picked up without
touching the docs. A cell that raises fails the build.

Everything a rendered page needs is served from the site itself:

* plotly figures are executed with the ``plotly_mimetype`` renderer and their
  JSON turned into a ``<div>`` plus a ``Plotly.newPlot`` call on the one
  ``plotly.min.js`` that the site serves (copied from the installed plotly);
* widgets are drawn by the ipywidgets HTML manager and RequireJS, fetched with
  ``npm pack`` at pinned versions (checked against their sha512 integrity),
  and anywidget's AMD module (copied from the installed anywidget), which
  plotly's ``FigureWidget`` needs. A FigureWidget's state carries 5 MB of
  JavaScript; that module is served once, by ``_static/widget-modules.js``,
  and evaluated once per page.

The raw executed notebook is kept in ``_build/.executed`` and reused while the
notebook and the package's sources are unchanged (``PDBVIZ_DOCS_EXECUTE=force``
executes every notebook again); the gallery page gives each notebook's execution
time from that run. Solution cells (tag ``solution``) are shown folded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: npm packages served by the site, with the integrity npm records for each tarball.
VENDOR_NPM = {
    "@jupyter-widgets/html-manager@1.0.15":
        "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA==",
    "requirejs@2.3.8":
        "sha512-7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw==",
}

#: Scripts for pages with widgets, in load order (paths under ``_static``). Plotly's own
#: ``plotly.min.js`` must load before RequireJS, or it registers itself as an AMD module.
WIDGET_SCRIPTS = {
    "widget-modules.js": {},
    "require.js": {},
    "pdbviz-widgets.js": {},
    "html-manager/embed-amd.js": {},
}

#: An anywidget module (``_esm``) longer than this is served once by ``widget-modules.js``
#: instead of inside every widget's saved state (plotly's FigureWidget carries 5 MB of it).
SHARED_ESM_MIN = 50_000

#: What stands in a widget's state for a shared module: it evaluates the module once per page
#: (one blob URL per module, so the browser's module map caches it) and re-exports its default.
ESM_STUB = """\
// The module of this widget is served once per page by _static/widget-modules.js.
const key = "{key}";
const urls = (globalThis.pdbvizWidgetModuleURLs ??= {{}});
urls[key] ??= URL.createObjectURL(new Blob([globalThis.pdbvizWidgetModules[key]], {{ type: "text/javascript" }}));
export default (await import(urls[key])).default;
"""

PLOTLY_DIV = 'class="plotly-graph-div"'
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_STATE_MIME = "application/vnd.jupyter.widget-state+json"


# ---------------------------------------------------------------- vendored JavaScript
def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def _npm_pack(spec: str, integrity: str, cache: Path) -> Path:
    """The tarball of ``spec`` from the npm registry (cached), checked against ``integrity``."""
    cache.mkdir(parents=True, exist_ok=True)
    name, version = spec.rsplit("@", 1)
    tarball = cache / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if not tarball.is_file() or _integrity(tarball) != integrity:
        npm = shutil.which("npm")
        if npm is None:
            raise ExtensionError(f"the docs serve {spec} themselves and fetch it with npm, which was not found: "
                                 "install Node.js and npm (e.g. apt-get install npm)")
        proc = subprocess.run([npm, "pack", spec, "--silent", "--pack-destination", str(cache)],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0 or not tarball.is_file():
            raise ExtensionError(f"npm pack {spec} failed: {proc.stderr.strip()[-500:]}")
    got = _integrity(tarball)
    if got != integrity:
        tarball.unlink()
        raise ExtensionError(f"{spec}: integrity {got} does not match the pinned {integrity}")
    return tarball


def _extract(tarball: Path, members: dict[str, str], dest: Path) -> None:
    """Extract ``package/<src>`` of ``tarball`` to ``dest/<dst>`` for each ``src: dst``; a trailing
    ``/`` copies a folder's files (source maps and the non-AMD bundle left out)."""
    with tarfile.open(tarball) as tar:
        for info in tar.getmembers():
            if not info.isfile():
                continue
            rel = info.name.removeprefix("package/")
            for src, dst in members.items():
                if src.endswith("/") and rel.startswith(src):
                    name = rel[len(src):]
                    if "/" in name or name.endswith(".map") or name in ("embed.js", "libembed-amd.js",
                                                                         "embed.js.LICENSE.txt"):
                        continue
                    target = dest / dst / name
                elif rel == src:
                    target = dest / dst
                else:
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(tar.extractfile(info).read())


def vendor_static(app: Sphinx, config) -> None:
    """Fill ``docs/_vendor`` (served under ``_static``) with every script the pages load."""
    import anywidget
    import plotly

    dest = Path(app.confdir) / "_vendor"
    cache = Path(app.outdir).parent / ".npm-cache"
    packs = {spec: _npm_pack(spec, integrity, cache) for spec, integrity in VENDOR_NPM.items()}
    stamp = json.dumps({"npm": VENDOR_NPM, "plotly": plotly.__version__, "anywidget": anywidget.__version__})
    if (dest / "STAMP").is_file() and (dest / "STAMP").read_text() == stamp:
        return
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    _extract(packs["@jupyter-widgets/html-manager@1.0.15"], {"dist/": "html-manager"},
             dest)
    _extract(packs["requirejs@2.3.8"], {"require.js": "require.js"}, dest)
    shutil.copyfile(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", dest / "plotly.min.js")
    # anywidget's AMD module (the same file the classic notebook loads); it needs @jupyter-widgets/base,
    # which the HTML manager defines.
    shutil.copyfile(Path(anywidget.__file__).parent / "nbextension" / "index.js", dest / "anywidget.js")
    (dest / "STAMP").write_text(stamp)


# ---------------------------------------------------------------- executing the notebooks
#: Run after a notebook's last cell, in its kernel, and left out of the saved notebook: let the
#: dashboards finish their background work (UMAP, training), then put each plotly FigureWidget's
#: current figure into its widget state. (A FigureWidget shown inside a box sends its later
#: changes as transient messages, so its saved state would otherwise be the figure it started with.)
FINALIZE = """\
import copy as _copy, gc as _gc
for _w in _gc.get_objects():
    if str(getattr(type(_w), "__module__", "")).startswith("pdbviz.widgets") and callable(getattr(_w, "wait", None)):
        _w.wait(600)
from ipywidgets.widgets.widget import _instances as _live
from plotly.basewidget import BaseFigureWidget as _FW
for _w in list(_live.values()):
    if isinstance(_w, _FW):
        _w._widget_layout = _copy.deepcopy(_w._layout_obj._props)
        _w._widget_data = _copy.deepcopy(_w._data)
"""


def _source_digest(notebook: Path, package: Path) -> str:
    h = hashlib.sha256(notebook.read_bytes())
    h.update(FINALIZE.encode())
    for path in sorted(package.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()


def plotly_outputs_to_html(nb) -> int:
    """Turn every plotly JSON output of ``nb`` into HTML that draws it with the page's ``Plotly``.

    Returns the number of figures converted. The HTML neither embeds plotly.js nor
    loads MathJax; ``div`` ids are derived from the cell and output positions so
    that two builds give the same pages.
    """
    import plotly.io as pio

    count = 0
    for ci, cell in enumerate(nb.cells):
        for oi, output in enumerate(cell.get("outputs", [])):
            fig = output.get("data", {}).get(PLOTLY_MIME)
            if fig is None:
                continue
            html = pio.to_html(fig, include_plotlyjs=False, include_mathjax=False, full_html=False,
                               default_width="100%", validate=False, div_id=f"plotly-cell{ci}-out{oi}",
                               config={"displaylogo": False, "responsive": True})
            output["data"] = {"text/html": html, "text/plain": "<plotly figure>"}
            count += 1
    return count


def prune_stale_buffers(nb) -> int:
    """Drop saved widget buffers whose place no longer exists in the final widget state.

    ``nbclient`` keeps every binary buffer a widget ever sent, also for a trait
    that was later set to None (plotly's ``FigureWidget`` sends its updates that
    way); the HTML manager then fails to put the buffer back. Returns how many
    were dropped.
    """
    widgets = nb.metadata.get("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})
    dropped = 0
    for model in widgets.values():
        buffers = model.get("buffers")
        if not buffers:
            continue
        kept = []
        for buf in buffers:
            node = model["state"]
            for key in buf["path"][:-1]:
                valid = (isinstance(node, dict) and key in node) or (isinstance(node, list) and isinstance(key, int)
                                                                    and 0 <= key < len(node))
                node = node[key] if valid else None
                if node is None:
                    break
            if isinstance(node, (dict, list)):
                kept.append(buf)
            else:
                dropped += 1
        if kept:
            model["buffers"] = kept
        else:
            del model["buffers"]
    return dropped


def share_widget_modules(nb, modules: dict[str, str]) -> int:
    """Move every long anywidget module (``_esm``) of ``nb``'s widget state into ``modules``.

    Each is replaced by ``ESM_STUB``, keyed by its content hash; ``modules``
    collects ``{key: source}`` for ``widget-modules.js``. Returns how many
    widget states were changed.
    """
    widgets = nb.metadata.get("widgets", {}).get(WIDGET_STATE_MIME, {}).get("state", {})
    changed = 0
    for model in widgets.values():
        esm = model.get("state", {}).get("_esm")
        if isinstance(esm, str) and len(esm) >= SHARED_ESM_MIN:
            key = hashlib.sha256(esm.encode()).hexdigest()[:16]
            modules[key] = esm
            model["state"]["_esm"] = ESM_STUB.format(key=key)
            changed += 1
    return changed


def widget_modules_script(modules: dict[str, str]) -> str:
    """``widget-modules.js``: the shared anywidget modules as strings, by key (a classic script, so
    that it also loads from ``file://``)."""
    lines = ["// Widget modules shared by the notebook pages (see docs/_ext/pdbviz_notebooks.py).",
             "globalThis.pdbvizWidgetModules = globalThis.pdbvizWidgetModules || {};"]
    lines += [f"globalThis.pdbvizWidgetModules[{json.dumps(k)}] = {json.dumps(v)};" for k, v in sorted(modules.items())]
    return "\n".join(lines) + "\n"


def execute_notebook(source: Path, target: Path, digest: str, timeout: int = 600) -> float:
    """Execute ``source`` in a scratch folder and save it, outputs and widget state, to ``target``.

    Returns the seconds taken. Plotly figures come out as JSON (the
    ``plotly_mimetype`` renderer); a cell that raises fails the build.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(source, as_version=4)
    n_cells = len(nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(FINALIZE))
    env = dict(os.environ, PLOTLY_RENDERER="plotly_mimetype")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pdbviz-docs-") as work:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True,
                                resources={"metadata": {"path": work}})
        client.execute(env=env, cwd=work)
    seconds = time.perf_counter() - t0
    del nb.cells[n_cells:]
    nb.metadata["pdbviz_docs"] = {"digest": digest, "seconds": round(seconds, 1)}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(target)
    return seconds


#: the cell tag of an exercise's solution in the teaching notebooks.
SOLUTION_TAG = "solution"


def fold_solutions(nb) -> int:
    """Tag every solution cell of ``nb`` ``hide-input``, so that the page shows its code folded under a
    toggle, as JupyterLab shows it (its outputs stay visible). Returns the number of cells tagged."""
    count = 0
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if SOLUTION_TAG in tags and "hide-input" not in tags:
            cell.metadata["tags"] = [*tags, "hide-input"]
            count += 1
    return count


def render_ready(executed: Path, target: Path, modules: dict[str, str]) -> None:
    """Write ``executed`` to ``target`` with its plotly figures as HTML, its solutions folded and its widget
    state repaired (long widget modules moved into ``modules``)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    plotly_outputs_to_html(nb)
    fold_solutions(nb)
    prune_stale_buffers(nb)
    share_widget_modules(nb, modules)
    text = nbformat.writes(nb)
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")


def _first_markdown(nb) -> tuple[str, str]:
    """The title (first heading) and the first paragraph of a notebook's first markdown cell."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.strip().splitlines()
        title = next((ln.lstrip("#").strip() for ln in lines if ln.startswith("#")), "")
        paragraphs = "\n".join(ln for ln in lines if not ln.startswith("#")).strip().split("\n\n")
        return title, " ".join(paragraphs[0].split()) if paragraphs and paragraphs[0] else ""
    return "", ""


def gallery_index(notebooks: list[Path], seconds: dict[str, float] | None = None) -> str:
    """The gallery page: one entry per notebook with its title and first paragraph, and how long it took to
    execute when the site was built (``seconds``, by notebook file name, where known)."""
    import nbformat

    seconds = seconds or {}

    lines = ["# Notebook gallery", "",
             "The teaching notebooks, executed when this site was built: the figures are interactive and the "
             "dashboards show the state they had at the end of the run (their Python side is not running "
             "here, so their controls do not compute). To run them yourself, install pdbviz and start "
             "`pdbviz lab`, which copies them into a folder of your own.", ""]
    for path in notebooks:
        title, intro = _first_markdown(nbformat.read(path, as_version=4))
        lines += [f"## [{title or path.stem}]({path.stem}.ipynb)", "", intro, ""]
        if path.name in seconds:
            lines += [f"*Executed in {seconds[path.name]:.0f} s when this site was built.*", ""]
    lines += ["```{toctree}", ":hidden:", ""] + [f"{p.stem}" for p in notebooks] + ["```", ""]
    return "\n".join(lines)


def build_gallery(app: Sphinx) -> None:
    """Execute every notebook that changed, write its renderable copy to ``docs/gallery``, and the index."""
    root = Path(app.confdir).parent
    sources = sorted((root / app.config.pdbviz_notebooks_dir).glob("*.ipynb"))
    if not sources:
        raise ExtensionError(f"no notebooks found in {root / app.config.pdbviz_notebooks_dir}")
    gallery = Path(app.srcdir) / "gallery"
    gallery.mkdir(exist_ok=True)
    cache = Path(app.outdir).parent / ".executed"
    force = os.environ.get("PDBVIZ_DOCS_EXECUTE", "").lower() == "force"
    wanted = {f"{p.stem}.ipynb" for p in sources} | {"index.md"}
    for stale in gallery.iterdir():
        if stale.name not in wanted:
            stale.unlink() if stale.is_file() else shutil.rmtree(stale)
    modules: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for source in sources:
        executed = cache / source.name
        digest = _source_digest(source, root / "pdbviz")
        meta = {}
        if executed.is_file():
            meta = json.loads(executed.read_text(encoding="utf-8")).get("metadata", {}).get("pdbviz_docs", {})
        if force or meta.get("digest") != digest:
            logger.info(f"notebook {source.name}: executing ...")
            seconds[source.name] = execute_notebook(source, executed, digest,
                                                    timeout=app.config.pdbviz_notebook_timeout)
            logger.info(f"notebook {source.name}: executed in {seconds[source.name]:.0f} s")
        else:
            logger.info(f"notebook {source.name}: unchanged, reusing the run of {meta.get('seconds')} s")
            if isinstance(meta.get("seconds"), (int, float)):
                seconds[source.name] = float(meta["seconds"])
        render_ready(executed, gallery / source.name, modules)
    script = Path(app.confdir) / "_vendor" / "widget-modules.js"
    text = widget_modules_script(modules)
    if not script.is_file() or script.read_text(encoding="utf-8") != text:
        script.write_text(text, encoding="utf-8")
    index = gallery_index(sources, seconds)
    path = gallery / "index.md"
    if not path.is_file() or path.read_text(encoding="utf-8") != index:
        path.write_text(index, encoding="utf-8")


def add_plotly_js(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Load the site's plotly.js on pages that draw plotly figures, before RequireJS."""
    if PLOTLY_DIV in context.get("body", ""):
        app.add_js_file("plotly.min.js", priority=200)


def setup(app: Sphinx) -> dict:
    app.add_config_value("pdbviz_notebooks_dir", "notebooks", "env")
    app.add_config_value("pdbviz_notebook_timeout", 600, "env")
    app.connect("config-inited", vendor_static)
    app.connect("builder-inited", build_gallery)
    app.connect("html-page-context", add_plotly_js)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
