"""The documentation: its checks, its notebook rendering, the user guide's examples, the site checker."""

import ast
import doctest
import importlib
import json
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
sys.path.insert(0, str(DOCS))

api = pytest.importorskip("pdbviz_api")  # needs Sphinx, which the test extras install
nbdocs = importlib.import_module("pdbviz_notebooks")


def _conf_list(name: str) -> list[str]:
    tree = ast.parse((DOCS / "conf.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"docs/conf.py defines no {name}")


API_MODULES = _conf_list("pdbviz_api_modules")


# ---------------------------------------------------------------- the API reference
def test_every_public_module_of_pdbviz_has_an_api_page():
    import pkgutil

    import pdbviz

    public = {f"pdbviz.{m.name}" for m in pkgutil.iter_modules(pdbviz.__path__) if not m.name.startswith("_")}
    assert public - set(API_MODULES) == set(), "add the new module to pdbviz_api_modules in docs/conf.py"
    assert set(API_MODULES) - public == {"pdbviz"}


def test_every_public_name_of_pdbviz_has_a_docstring():
    modules = [importlib.import_module(m) for m in API_MODULES]
    assert api.missing_docstrings(modules) == []


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        """A package for the docstring check."""
        from torch import nn

        __all__ = ["good", "bare", "Model", "Loud", "LIMIT", "SILENT", "ghost"]

        #: a documented constant
        LIMIT = (1, 2)
        SILENT = (3, 4)


        def good():
            """Documented."""


        def bare():
            pass


        class _Base:
            def helper(self):
                pass


        class Model(_Base, nn.Module):
            """A model."""

            def forward(self, x):
                return x

            def extra(self):
                """Documented."""

            @property
            def size(self):
                return 1


        class Loud:
            pass
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("fakepkg")
    sys.modules.pop("fakepkg", None)


def test_the_docstring_check_names_each_gap_and_nothing_else(fake_package):
    problems = api.missing_docstrings([fake_package])
    assert problems == [
        "fakepkg.bare: function without a docstring",
        "fakepkg.Model.size: member without a docstring",
        "fakepkg.Model.helper: member without a docstring",
        "fakepkg.Loud: class without a docstring",
        "fakepkg.SILENT: constant without a '#:' comment or docstring",
        "fakepkg.ghost is in __all__ but does not exist",
    ]


def test_a_sphinx_build_fails_on_a_missing_docstring_and_on_a_broken_reference(fake_package, tmp_path):
    import subprocess

    src = tmp_path / "site"
    src.mkdir()
    (src / "conf.py").write_text(
        f"import sys\nsys.path[:0] = [{str(DOCS / '_ext')!r}, {str(tmp_path)!r}]\n"
        "extensions = ['sphinx.ext.autodoc', 'sphinx.ext.autosummary', 'sphinx.ext.napoleon', 'pdbviz_api']\n"
        "pdbviz_api_modules = pdbviz_api_canonical_order = ['fakepkg']\n"
        "nitpicky = True\nnitpick_ignore_regex = [(r'py:.*', r'(?!pdbviz\\b|fakepkg\\b).*')]\n")
    (src / "index.rst").write_text("Site\n====\n\nSee :func:`fakepkg.good` and :func:`pdbviz.no_such_function`.\n\n"
                                   ".. toctree::\n\n   api/index\n")
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(src),
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert "fakepkg.bare: function without a docstring" in run.stderr
    assert "fakepkg.SILENT: constant without a '#:' comment or docstring" in run.stderr
    assert "reference target not found: pdbviz.no_such_function" in run.stderr
    assert "fakepkg.good" not in run.stderr  # a reference that exists resolves
    assert (tmp_path / "out" / "api" / "generated" / "fakepkg.Model.html").is_file()


def test_a_module_without_all_offers_what_it_defines():
    import pdbviz.data

    names = api.public_names(pdbviz.data)
    assert {"load_dataset", "Data", "DATASETS"} <= set(names)
    assert not [n for n in names if n.startswith("_")] and "Path" not in names  # imports are not its API


# ---------------------------------------------------------------- notebooks on the site
def test_plotly_outputs_become_html_drawn_by_the_sites_own_plotly():
    import nbformat

    nb = nbformat.v4.new_notebook()
    fig = {"data": [{"type": "bar", "x": [1, 2], "y": [3, 4]}], "layout": {"title": {"text": "t"}}}
    nb.cells.append(nbformat.v4.new_code_cell("fig", outputs=[
        nbformat.v4.new_output("display_data", data={nbdocs.PLOTLY_MIME: fig})]))
    assert nbdocs.plotly_outputs_to_html(nb) == 1
    data = nb.cells[0].outputs[0]["data"]
    assert set(data) == {"text/html", "text/plain"}
    html = data["text/html"]
    assert 'id="plotly-cell0-out0"' in html and "Plotly.newPlot" in html and '"type":"bar"' in html
    assert "<script src" not in html and "cdn" not in html.lower() and "mathjax" not in html.lower()


def test_widget_buffers_of_a_trait_reset_to_none_are_dropped():
    import nbformat

    nb = nbformat.v4.new_notebook()
    state = {"m1": {"model_name": "AnyModel", "state": {"_widget_data": [{"x": {}}], "_py2js_update": None},
                    "buffers": [{"path": ["_widget_data", 0, "x", "buffer"], "data": "AA==", "encoding": "base64"},
                                {"path": ["_py2js_update", "style_data", "x", 0, "buffer"], "data": "AA==",
                                 "encoding": "base64"}]},
             "m2": {"model_name": "AnyModel", "state": {"_py2js_update": None},
                    "buffers": [{"path": ["_py2js_update", "x", "buffer"], "data": "AA==", "encoding": "base64"}]}}
    nb.metadata["widgets"] = {nbdocs.WIDGET_STATE_MIME: {"state": state, "version_major": 2, "version_minor": 0}}
    assert nbdocs.prune_stale_buffers(nb) == 2
    state = nb.metadata["widgets"][nbdocs.WIDGET_STATE_MIME]["state"]
    assert [b["path"] for b in state["m1"]["buffers"]] == [["_widget_data", 0, "x", "buffer"]]
    assert "buffers" not in state["m2"]


def test_the_gallery_lists_every_notebook_with_its_title_and_introduction():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    page = nbdocs.gallery_index(notebooks)
    for path in notebooks:
        title = json.loads(path.read_text(encoding="utf-8"))["cells"][0]["source"][0].lstrip("# ").strip()
        assert f"## [{title}]({path.stem}.ipynb)" in page
        assert f"\n{path.stem}\n" in page  # in the hidden toctree
    assert "1 · Quantization basics" in page and "A quantized network stores each weight" in page


# ---------------------------------------------------------------- the user guide
GUIDE = sorted((DOCS / "guide").glob("*.md"))


@pytest.mark.slow
@pytest.mark.parametrize("page", GUIDE, ids=[p.stem for p in GUIDE])
def test_user_guide_examples_print_what_the_page_shows(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testfile(str(page), module_relative=False, optionflags=flags, verbose=False, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {page.name} failed"


def test_the_guide_covers_every_part_and_the_toctree_lists_each_page():
    index = (DOCS / "guide" / "index.md").read_text(encoding="utf-8")
    parts = {"quantizers", "models", "data", "separability", "experiments", "widgets", "sweeps", "export", "lab",
             "extending"}
    assert {p.stem for p in GUIDE} - {"index"} == parts
    assert all(f"\n{p}\n" in index for p in parts)


# ---------------------------------------------------------------- the browser check of the site
@pytest.fixture
def tiny_site(tmp_path):
    import plotly

    site = tmp_path / "site"
    (site / "_static").mkdir(parents=True)
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    (site / "_static" / "plotly.min.js").write_bytes(plotly_js.read_bytes())
    plot = ('<div id="p" class="plotly-graph-div" style="height:300px"></div><script>'
            'Plotly.newPlot("p", [{"type": "bar", "x": [1, 2], "y": [2, 1]}], {})</script>')
    page = '<!doctype html><html><head><link rel="icon" href="data:,">{head}</head><body>{body}</body></html>'
    (site / "index.html").write_text(page.format(head='<script src="_static/plotly.min.js"></script>', body=plot))
    return site, page


@pytest.mark.browser
def test_site_check_passes_a_page_whose_plot_renders(tiny_site, require_chromium):
    import check_site

    site, _ = tiny_site
    assert check_site.check(site, chromium=require_chromium, render_timeout=20) == []


@pytest.mark.browser
def test_site_check_reports_console_errors_outside_requests_and_unrendered_plots(tiny_site, require_chromium):
    import check_site

    site, page = tiny_site
    (site / "broken.html").write_text(page.format(
        head='<script src="https://cdn.example.org/lib.js"></script>',
        body='<div class="plotly-graph-div"></div><script>console.error("boom")</script>'))
    problems = check_site.check(site, chromium=require_chromium, render_timeout=2)
    assert any(p.startswith("broken.html: request outside the site: https://cdn.example.org/lib.js") for p in problems)
    assert "broken.html: console error: boom" in problems
    assert any(p.startswith("broken.html: not rendered after 2 s: 0/1 figures") for p in problems)
    assert not [p for p in problems if p.startswith("index.html")]


# ---------------------------------------------------------------- numbers generated from the committed demo run
regenerate = importlib.import_module("regenerate")


def test_generated_sections_are_what_the_committed_run_renders():
    run = regenerate.load()
    found = set()
    for doc in regenerate.DOCUMENTS:
        text = (ROOT / doc).read_text(encoding="utf-8")
        parts = regenerate.sections(text)
        assert parts, f"{doc} has no generated section"
        for name, body in parts.items():
            assert body == regenerate.render(name, run), f"{doc}: section {name} is stale: python docs/regenerate.py"
            found.add(name)
    assert set(regenerate.RENDERERS) <= found  # every kind of demo section is used somewhere
    assert {n for n in found if n.startswith("bench-")}  # and benchmarks' committed outputs are shown
    with pytest.raises(ValueError, match="has no committed output"):
        regenerate.render("bench-no-such-benchmark", run)
    with pytest.raises(ValueError, match="unknown generated section 'nope'"):
        regenerate.rewrite("<!-- generated: nope -->\nx\n<!-- end generated: nope -->", run)


def _markdown_table(text: str) -> list[list[str]]:
    rows = [line.strip().strip("|").split("|") for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows if not set("".join(row)) <= set("-: ")]


def test_readme_table_agrees_with_results_csv_cell_by_cell():
    import pandas as pd

    from pdbviz.results import compact_bits

    table = pd.read_csv(DOCS / "results" / "demo" / "results.csv", keep_default_na=False)
    body = regenerate.sections((ROOT / "README.md").read_text(encoding="utf-8"))["demo-table"]
    header, *rows = _markdown_table(body)
    assert header == ["schedule", "bits per layer", "avg bits", "KiB", "accuracy % (mean ± 95% CI)"]
    assert [r[0] for r in rows] == table.schedule.tolist()  # every schedule of the run, in its order
    for cells, row in zip(rows, table.itertuples()):
        assert cells[1] == compact_bits(row.w_bits)
        assert float(cells[2]) == pytest.approx(row.avg_bits, abs=0.005)
        assert float(cells[3]) == pytest.approx(row.kib, abs=0.005)
        mean, ci = (float(v) for v in cells[4].split(" ± "))
        assert mean == pytest.approx(row.acc_mean, abs=0.005) and ci == pytest.approx(row.acc_ci95, abs=0.005)
    assert "95% confidence interval over seeds and test images" in body  # the "±" says what it is


def test_readme_claims_and_machine_agree_with_the_committed_files():
    import pandas as pd

    claims = pd.read_csv(DOCS / "results" / "demo" / "claims.csv", keep_default_na=False)
    meta = json.loads((DOCS / "results" / "demo" / "metadata.json").read_text())
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    text = regenerate.sections(readme)["demo-claims"]
    for r in claims.itertuples():
        assert f"({r.claim}) {r.statement}: *{r.verdict}*" in text
        if r.verdict not in ("not measured", "not testable"):
            assert f"{float(r.effect):+.2f} points, 95% CI [{float(r.ci_low):+.2f}, {float(r.ci_high):+.2f}]" in text
    summary = regenerate.sections(readme)["demo-summary"]
    for key in ("pdbviz", "torch", "cpu"):
        assert str(meta[key]) in summary
    assert f"{meta['seconds']:.0f} s" in summary and meta["cores"] >= 1
    # the figures the README shows are the run's, print-ready: 7 in at 300 dpi
    from PIL import Image

    for stem, path in meta["figures"].items():
        assert f"({path})" in readme
        image = Image.open(ROOT / path)
        assert image.size[0] == 2100 and image.info["dpi"][0] == pytest.approx(300, abs=0.01)
