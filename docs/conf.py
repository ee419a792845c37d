"""Sphinx configuration of the pdbviz documentation: ``sphinx-build -W -b html docs docs/_build/html``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

import pdbviz  # noqa: E402

project = "pdbviz"
author = "pdbviz developers"
copyright = "pdbviz developers"
release = version = pdbviz.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "myst_nb",
    "pdbviz_api",
    "pdbviz_notebooks",
]

# The API reference: one page per module, in this order (a new public module needs one line here;
# the build fails until it has one). Each object is documented under the first module of
# pdbviz_api_canonical_order that exports it.
pdbviz_api_modules = [
    "pdbviz",
    "pdbviz.quant",
    "pdbviz.data",
    "pdbviz.models",
    "pdbviz.train",
    "pdbviz.history",
    "pdbviz.inference",
    "pdbviz.analysis",
    "pdbviz.experiment",
    "pdbviz.results",
    "pdbviz.claims",
    "pdbviz.stats",
    "pdbviz.study",
    "pdbviz.checkpoint",
    "pdbviz.sweeps",
    "pdbviz.export",
    "pdbviz.auditing",
    "pdbviz.plot",
    "pdbviz.widgets",
    "pdbviz.report",
    "pdbviz.demo",
    "pdbviz.cli",
]
pdbviz_api_canonical_order = pdbviz_api_modules[1:] + ["pdbviz"]
pdbviz_notebooks_dir = "notebooks"

# Every cross-reference into pdbviz must resolve; other libraries' names (torch, pandas, ...) are
# left as text, since their inventories would have to be fetched from the internet.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!pdbviz\b).*")]

autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_inherit_docstrings = False
autodoc_member_order = "bysource"
autosummary_generate = False
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
napoleon_use_rtype = False

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # pdbviz_notebooks executes the notebooks (see docs/_ext/pdbviz_notebooks.py)
nb_merge_streams = True
nb_ipywidgets_js = __import__("pdbviz_notebooks").WIDGET_SCRIPTS

source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_vendor", "**.ipynb_checkpoints", "results"]

html_theme = "pydata_sphinx_theme"
html_title = f"pdbviz {version}"
html_static_path = ["_static", "_vendor"]
html_css_files = ["pdbviz.css"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "logo": {"text": "pdbviz"},
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": [], "getting-started": []}
html_show_sourcelink = False
html_favicon = "_static/pdbviz-logo.svg"
html_logo = "_static/pdbviz-logo.svg"
html_context = {"default_mode": "light"}
