"""The house's layers hold in the import graph and at run time."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([exe, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_import_contracts_are_kept():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, broken", [
    ("plot/figures.py", "from ..train import fit", "pdbviz.plot is not allowed to import pdbviz.train"),
    ("analysis/sensitivity.py", "from ..train import fit", "pdbviz.analysis is not allowed to import pdbviz.train"),
    ("quant/convert.py", "import plotly", "pdbviz.quant is not allowed to import plotly"),
])
def test_a_wrong_import_breaks_the_contract(tmp_path, module, line, broken):
    shutil.copytree(ROOT / "pdbviz", tmp_path / "pdbviz", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "pdbviz" / module, "a", encoding="utf-8") as fh:
        fh.write(f"\n{line}  # a deliberately wrong import\n")
    result = _lint(tmp_path, pythonpath=tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return set(out.split())


def test_plot_loads_no_training_code_and_no_torch():
    loaded = _modules_after("import pdbviz.plot")
    assert "pdbviz.plot" in loaded
    assert not {"pdbviz.train", "pdbviz.experiment", "pdbviz.analysis", "pdbviz.quant", "torch"} & loaded


def test_import_pdbviz_is_light_and_names_load_on_use():
    loaded = _modules_after("import pdbviz")
    assert not {m for m in loaded if m.startswith("pdbviz.") and m not in ("pdbviz._version",)}
    assert "torch" not in loaded
    loaded = _modules_after("import pdbviz; pdbviz.fit")
    assert {"pdbviz.train", "torch"} <= loaded and "pdbviz.plot" not in loaded


def test_every_public_name_resolves():
    import pdbviz

    for name in pdbviz.__all__:
        assert getattr(pdbviz, name) is not None, name
    assert set(pdbviz.__all__) <= set(dir(pdbviz))


def _contract_layers() -> list[set[str]]:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers"]
    return [{m.strip() for m in layer.split("|")} for layer in layers["layers"]]


def _page_layers(text: str) -> list[set[str]]:
    """The modules of each row of the table under "## Layers", top layer first."""
    section = text.split("\n## Layers\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if re.match(r"\|\s*\d+\s*\|", line)]
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1)), "layers are numbered 1, 2, ... from the top"
    return [set(re.findall(r"`([\w.]+)`", r[1])) for r in rows]


def test_the_architecture_page_lists_the_layers_of_the_contract():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert _page_layers(page) == _contract_layers()
    diagram = page.split("```text\n", 1)[1].split("```", 1)[0]
    drawn = [set(re.split(r"\s*\|\s*", line.strip().split(None, 1)[1]))
             for line in diagram.splitlines() if line.strip()[:1].isdigit()]
    assert drawn == _contract_layers()


def test_the_page_check_notices_a_missing_module():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert _page_layers(page.replace("`_version`, ", "")) != _contract_layers()


def _module_imports(package: Path) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}``, counting imports inside functions too."""
    import ast

    files = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        files[name] = (path, parts[:-1] if is_package else parts[:-1])
    graph = {}
    for name, (path, home) in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(home[:len(home) - node.level + 1] + [node.module] if node.level else [node.module]) \
                    if node.module else ".".join(home[:len(home) - node.level + 1])
                submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in files]
                targets = submodules if submodules and node.module is None else [base, *submodules]
            else:
                continue
            found |= {t for t in targets if t in files and t != name}
        graph[name] = found
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_module_imports_itself_round_a_circle():
    assert _cycles(_module_imports(ROOT / "pdbviz")) == []
    # the check sees a circle hidden in a function-level import
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_stays_under_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "pdbviz").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}
