import json
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_the_five_teaching_notebooks_exist_and_are_stripped():
    assert [p.stem for p in NOTEBOOKS] == ["01_quantization_basics", "02_feature_separability",
                                         "03_bit_allocation_explorer", "04_paper_figures", "05_which_metric"]
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert code and all(not c.get("outputs") and c.get("execution_count") is None for c in code), path.name
        assert sum(c["cell_type"] == "markdown" for c in nb["cells"]) >= 3, f"{path.name} needs teaching prose"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_within_two_minutes(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    t0 = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - t0
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert seconds < 120, f"{path.name} took {seconds:.0f} s"


def test_each_notebook_says_in_its_first_cell_how_to_install_what_it_needs():
    for path in NOTEBOOKS:
        first = json.loads(path.read_text())["cells"][0]
        text = "".join(first["source"])
        assert first["cell_type"] == "markdown", path.name
        assert "pip install -e ." in text and "download.pytorch.org/whl/cpu" in text, path.name
