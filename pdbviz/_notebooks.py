"""The teaching notebooks that ship with pdbviz, and copying them into a folder of the user's (``pdbviz lab``)."""

from __future__ import annotations

from pathlib import Path

from ._io import atomic_write

#: where ``pdbviz lab`` copies the teaching notebooks when no ``--dir`` is given (in the current folder).
NOTEBOOKS_FOLDER = "pdbviz-notebooks"


def packaged_notebooks() -> Path:
    """The teaching notebooks that came with pdbviz: inside an installed wheel, else the checkout's ``notebooks/``."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "notebooks", package.parent / "notebooks"):
        if any(candidate.glob("*.ipynb")):
            return candidate
    raise FileNotFoundError(f"the teaching notebooks are missing from the installed package ({package}); "
                            "reinstall pdbviz")


def copy_notebooks(source: Path, target: Path, dry_run: bool = False) -> tuple[list[str], list[str]]:
    """Copy each notebook of ``source`` that ``target`` lacks; returns (copied, kept). Existing files are kept."""
    copied, kept = [], []
    if target.resolve() == source.resolve():
        return copied, sorted(p.name for p in source.glob("*.ipynb"))
    if not dry_run:
        target.mkdir(parents=True, exist_ok=True)
    for notebook in sorted(source.glob("*.ipynb")):
        dest = target / notebook.name
        if dest.exists():
            kept.append(notebook.name)
            continue
        if not dry_run:
            with atomic_write(dest, "wb") as fh:  # a new file of the user's, not a copy of the installed mode bits
                fh.write(notebook.read_bytes())
        copied.append(notebook.name)
    return copied, kept


#: the environment variable that names the folder the teaching notebooks write their files into.
OUTPUT_ENV = "PDBVIZ_OUTPUT"
#: the folder, under the current one, that the teaching notebooks write their files into by default.
OUTPUT_FOLDER = "pdbviz-output"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def output_folder(name: str, cwd: str | Path | None = None) -> Path:
    """Where a teaching notebook writes its files (figures, tables, reports): ``<folder>/<name>``, created.

    ``<folder>`` is ``$PDBVIZ_OUTPUT`` when set, else ``pdbviz-output`` in the
    current folder; when the current folder lies inside the installed package
    or the folder of the packaged notebooks (a checkout's ``notebooks/``), it
    is ``pdbviz-output`` in the system's temporary folder instead, so that
    running a notebook never writes beside the notebooks that came with
    pdbviz.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     output_folder("04_paper_figures", cwd=d) == Path(d).resolve() / "pdbviz-output" / "04_paper_figures"
        True
    """
    import os
    import tempfile

    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"name must be one folder name such as '04_paper_figures', got {name!r}")
    here = Path(cwd if cwd is not None else Path.cwd()).resolve()
    base = os.environ.get(OUTPUT_ENV)
    if base:
        folder = Path(base).expanduser().resolve()
    else:
        package = Path(__file__).resolve().parent
        protected = [package]
        try:
            protected.append(packaged_notebooks().resolve())
        except FileNotFoundError:
            pass
        if any(_inside(here, p) for p in protected):
            folder = Path(tempfile.gettempdir()) / OUTPUT_FOLDER
        else:
            folder = here / OUTPUT_FOLDER
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    return out
