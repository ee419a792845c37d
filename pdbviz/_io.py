"""Atomic file writing shared by everything that saves user results."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path`` and move it over ``path`` on success.

    A crash or an exception while writing leaves any previous file at ``path``
    intact and removes the temporary file. The rename is atomic on POSIX and on
    Windows (``os.replace``). The temporary file is created with mode 0o666, so
    the process umask applies as it would to ``open(path, "w")``; the umask is
    never read or changed.

    Example::

        with atomic_write("results.json", "w", encoding="utf-8") as fh:
            fh.write("{}")
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def json_default(obj):
    """``json.dump``'s ``default``: numpy scalars as Python numbers, tuples and sets as lists."""
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def read_saved_folder(directory: str | os.PathLike, meta_name: str, version: int, what: str,
                      files: dict[str, str]) -> tuple[dict, dict]:
    """The JSON document ``meta_name`` of a folder that a ``save`` wrote, and its CSV ``files`` as DataFrames.

    Args:
        directory: the folder.
        meta_name: the JSON file holding ``format_version`` and the rest.
        version: the ``format_version`` this pdbviz reads.
        what: what the folder holds, for messages ("results", "study").
        files: ``{name: CSV file name}``; an empty file gives an empty DataFrame.

    Raises FileNotFoundError for a missing file, ValueError for invalid JSON
    or another format version.
    """
    import json

    import pandas as pd

    directory = Path(directory)
    meta = directory / meta_name
    if not meta.is_file():
        raise FileNotFoundError(f"no {meta_name} in {directory}")
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta} is not valid JSON: {err}") from None
    if doc.get("format_version") != version:
        raise ValueError(f"{meta} has {what} format_version {doc.get('format_version')!r}; this pdbviz reads "
                         f"version {version}")
    frames = {}
    for name, fname in files.items():
        path = directory / fname
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing")
        frames[name] = pd.read_csv(path) if path.stat().st_size > 1 else pd.DataFrame()
    return doc, frames
