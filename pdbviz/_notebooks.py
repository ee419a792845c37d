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
