"""Packaging: the notebooks travel with the package, ``pdbviz lab`` works from a wheel, conda mirrors pip."""

import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

from pdbviz.cli import main

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


class _Exec(Exception):
    pass


@pytest.fixture
def no_exec(monkeypatch):
    """Record the command ``pdbviz lab`` would replace itself with, instead of starting JupyterLab."""
    calls = []

    def fake_execv(exe, argv):
        calls.append(argv)
        raise _Exec

    monkeypatch.setattr(os, "execv", fake_execv)
    return calls


def _run_lab(argv, calls):
    with pytest.raises(_Exec):
        main(["lab", *argv])
    return calls[-1]


def test_lab_copies_the_notebooks_into_a_folder_of_the_users_and_starts_jupyterlab_there(tmp_path, no_exec,
                                                                                        monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = _run_lab(["--no-browser"], no_exec)
    folder = tmp_path / "pdbviz-notebooks"
    assert sorted(p.name for p in folder.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    assert all((folder / p.name).read_bytes() == p.read_bytes() for p in NOTEBOOKS)
    assert argv[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={folder}" in argv and "--ServerApp.ip=127.0.0.1" in argv
    token = next(a for a in argv if a.startswith("--ServerApp.token=")).split("=", 1)[1]
    assert len(token) >= 32
    assert f"copied {len(NOTEBOOKS)} notebook(s) into {folder}" in capsys.readouterr().out


def test_lab_keeps_a_notebook_the_user_changed(tmp_path, no_exec, capsys):
    folder = tmp_path / "mine"
    _run_lab(["--dir", str(folder)], no_exec)
    edited = folder / NOTEBOOKS[0].name
    edited.write_text("my notes", encoding="utf-8")
    (folder / NOTEBOOKS[1].name).unlink()
    capsys.readouterr()
    _run_lab(["--dir", str(folder)], no_exec)
    assert edited.read_text(encoding="utf-8") == "my notes"
    assert (folder / NOTEBOOKS[1].name).read_bytes() == NOTEBOOKS[1].read_bytes()
    assert f"copied 1 notebook(s) into {folder}; kept {len(NOTEBOOKS) - 1} already there" in capsys.readouterr().out


def test_lab_dry_run_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["lab", "--dry-run"]) == 0
    assert list(tmp_path.iterdir()) == []
    assert f"would copy {len(NOTEBOOKS)} notebook(s)" in capsys.readouterr().out


def test_lab_refuses_a_file_as_its_folder_in_one_line(tmp_path, capsys):
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    assert main(["lab", "--dir", str(not_a_folder)]) == 2
    err = capsys.readouterr().err
    assert err == f"pdbviz lab: error: --dir {not_a_folder} is not a folder\n"


def test_lab_refuses_a_folder_it_cannot_create_in_one_line(tmp_path, capsys):
    under_a_file = tmp_path / "file.txt" / "notebooks"
    (tmp_path / "file.txt").write_text("x")
    assert main(["lab", "--dir", str(under_a_file)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pdbviz lab: error: cannot write the notebooks into {under_a_file} (") and err.count("\n") == 1


# ---------------------------------------------------------------- conda mirrors pip
def _name(requirement: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


CONDA_NAMES = {"pytorch": "torch", "python-kaleido": "kaleido"}


def test_environment_yml_lists_the_same_packages_as_pyproject():
    tomllib = pytest.importorskip("tomllib")
    yaml = pytest.importorskip("yaml")
    pip_deps = dict(_name(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name, spec = _name(dep)
            if name not in ("python", "pip"):
                conda[CONDA_NAMES.get(name, name)] = spec
    assert conda == pip_deps
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == ['-e ".[test]"']


# ---------------------------------------------------------------- a wheel in a fresh environment
def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_a_wheel_built_from_the_sdist_carries_the_notebooks_and_pdbviz_lab_finds_them(tmp_path):
    # Build the sdist from a copy of what a release contains, then the wheel from the sdist (as `python -m
    # build` does), without network or build isolation.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "pdbviz", src / "pdbviz", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "notebooks", src / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    build = [sys.executable, "-c", "import sys; from setuptools import build_meta as b; "
             "print(b.build_sdist(sys.argv[1]))", str(tmp_path / "sdist")]
    sdist = subprocess.run(build, cwd=src, capture_output=True, text=True, timeout=300, check=True).stdout.split()[-1]
    with tarfile.open(tmp_path / "sdist" / sdist) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "unpacked", filter="data")
    unpacked = next((tmp_path / "unpacked").iterdir())
    assert {f"{unpacked.name}/notebooks/{p.name}" for p in NOTEBOOKS} <= set(names)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(tmp_path / "dist"), str(unpacked)], check=True, capture_output=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("pdbviz-*.whl"))

    # A fresh virtual environment with only the wheel installed; pdbviz's dependencies come from this
    # environment's site-packages through a path entry (no editable install of the checkout is visible).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=600)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, capture_output=True, timeout=300)
    installed = purelib / "pdbviz" / "notebooks"
    assert sorted(p.name for p in installed.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]
    before = _digest(installed)

    work = tmp_path / "elsewhere"  # not the checkout, so only the installed notebooks can be found
    work.mkdir()
    pdbviz_exe = venv / "bin" / "pdbviz"
    help_text = subprocess.run([str(pdbviz_exe), "lab", "--help"], cwd=work, capture_output=True, text=True,
                               timeout=300, check=True).stdout
    assert "pdbviz-notebooks" in help_text and "127.0.0.1" in help_text
    run = subprocess.run([str(python), "-c", (
        "import os, sys\n"
        "os.execv = lambda exe, argv: (print('EXEC', *argv), sys.exit(0))\n"
        "import pdbviz\n"
        "print('PACKAGE', pdbviz.__file__)\n"
        "from pdbviz.cli import main\n"
        "sys.exit(main(['lab', '--no-browser']))\n")], cwd=work, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert f"PACKAGE {purelib / 'pdbviz' / '__init__.py'}" in run.stdout
    copies = work / "pdbviz-notebooks"
    assert all((copies / p.name).read_bytes() == p.read_bytes() for p in NOTEBOOKS)
    assert f"--ServerApp.root_dir={copies}" in run.stdout and "--ServerApp.ip=127.0.0.1" in run.stdout
    (copies / NOTEBOOKS[0].name).write_text("edited", encoding="utf-8")
    assert _digest(installed) == before  # the installed notebooks are never touched
    refused = subprocess.run([str(pdbviz_exe), "lab", "--dir", str(installed), "--dry-run"], cwd=work,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "installed package's own notebooks folder" in refused.stderr
    assert refused.stderr.count("\n") == 1
