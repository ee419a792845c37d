"""The runs of a sweep on disk: one small record per run, keyed by what determines its numbers.

A run's key is a hash of its task (float or schedule), schedule entry and
resolved bits, seed, model, dataset, training settings and the pdbviz
version; a schedule fine-tuned from a float model also carries that float
run's key. The folder ``<out>/runs/`` holds, per run::

    <key>.json           the record: run row, schedule, settings (written last)
    <key>.history.csv    per-epoch history
    <key>.profile.csv    separability profile (runs of the first seed only)
    <key>.model.pt       the trained float model (float runs only; resumed sweeps fine-tune from it)

Every file is written atomically and the JSON last, so a run is finished
exactly when its JSON reads back whole; an interrupted write leaves no record
and the run is redone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from .._io import atomic_write
from .._version import __version__
from ..checkpoint import load_model, save_model
from ..data import Data

log = logging.getLogger(__name__)

RUN_FORMAT = "pdbviz-sweep-run"
RUN_FORMAT_VERSION = 1


def fingerprint_data(data: Data) -> dict:
    """What identifies a dataset in a run key: its name, sizes and a hash of its tensors."""
    h = hashlib.sha256()
    for t in (data.X_train, data.y_train, data.X_test, data.y_test):
        t = t.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.numpy().tobytes())
    return {"name": data.name, "n_train": len(data.train), "n_test": len(data.test) if data.test is not None else 0,
            "augment": data.augment, "sha256": h.hexdigest()}


def fingerprint_model(model, width: float) -> dict:
    """What identifies a model in a run key: a zoo name and width, or a module's class, structure and weights."""
    if isinstance(model, str):
        return {"name": model, "width": float(width)}
    h = hashlib.sha256(repr(model).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    cls = type(model)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "sha256": h.hexdigest()}


def run_key(**parts) -> str:
    """A stable 20-hex-digit key of a run's description (the pdbviz version is always part of it).

    Example:
        >>> run_key(task="float", seed=0) == run_key(seed=0, task="float")
        True
        >>> run_key(task="float", seed=0) == run_key(task="float", seed=1)
        False
    """
    doc = {"pdbviz_version": __version__, **parts}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _plain(obj):
    if isinstance(obj, (tuple, set)):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot describe {type(obj).__name__} in a run key")


class RunStore:
    """The ``runs/`` folder of a sweep: write a finished run once, read finished runs back.

    Example:
        >>> store = RunStore("no-such-sweep")
        >>> store.keys(), store.read("0123456789abcdef0123")
        ([], None)
    """

    def __init__(self, directory: str | os.PathLike):
        self.root = Path(directory)
        self.dir = self.root / "runs"

    def _path(self, key: str, suffix: str) -> Path:
        return self.dir / f"{key}.{suffix}"

    def read(self, key: str) -> dict | None:
        """The JSON record of a finished run, or None (missing, half-written or unreadable: to be redone)."""
        path = self._path(key, "json")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            log.warning("run record %s is unreadable and will be redone: %s", path, err)
            return None
        if not isinstance(doc, dict) or doc.get("format") != RUN_FORMAT or doc.get("key") != key:
            log.warning("run record %s is not a pdbviz sweep record; it will be redone", path)
            return None
        if doc.get("format_version") != RUN_FORMAT_VERSION:
            log.warning("run record %s has format version %r (this pdbviz writes %d); it will be redone", path,
                        doc.get("format_version"), RUN_FORMAT_VERSION)
            return None
        for name in doc.get("files", {}).values():
            if not (self.dir / name).is_file():
                log.warning("run record %s lacks %s; it will be redone", path, name)
                return None
        return doc

    def write(self, key: str, doc: dict, history: pd.DataFrame | None = None, profile: pd.DataFrame | None = None,
              model: nn.Module | None = None) -> Path:
        """Write one run: its tables and model first, then its JSON record; each file atomically."""
        self.dir.mkdir(parents=True, exist_ok=True)
        files = {}
        if history is not None:
            files["history"] = self._write_csv(key, "history.csv", history)
        if profile is not None:
            files["profile"] = self._write_csv(key, "profile.csv", profile)
        if model is not None:
            save_model(model, self._path(key, "model.pt"))
            files["model"] = self._path(key, "model.pt").name
        record = {"format": RUN_FORMAT, "format_version": RUN_FORMAT_VERSION, "key": key, **doc, "files": files}
        path = self._path(key, "json")
        with atomic_write(path, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1, default=_json_value, allow_nan=True)
        return path

    def _write_csv(self, key: str, suffix: str, frame: pd.DataFrame) -> str:
        path = self._path(key, suffix)
        with atomic_write(path, "w", encoding="utf-8") as fh:
            frame.to_csv(fh, index=False)
        return path.name

    def history(self, doc: dict) -> pd.DataFrame | None:
        """The per-epoch history of the run ``doc`` describes (None when it was not kept)."""
        return self._read_csv(doc, "history")

    def profile(self, doc: dict) -> pd.DataFrame | None:
        """The separability profile of the run ``doc`` describes (None when it was not measured)."""
        return self._read_csv(doc, "profile")

    def model(self, doc: dict, architecture: nn.Module | None = None) -> nn.Module | None:
        """The float model a record saved (``architecture`` for models ``build_model`` did not make)."""
        name = doc.get("files", {}).get("model")
        return load_model(self.dir / name, model=architecture) if name else None

    def _read_csv(self, doc: dict, what: str) -> pd.DataFrame | None:
        name = doc.get("files", {}).get(what)
        if not name:
            return None
        return pd.read_csv(self.dir / name)

    def keys(self) -> list[str]:
        """Keys of every readable run record in the folder."""
        if not self.dir.is_dir():
            return []
        return sorted(p.name[:-5] for p in self.dir.glob("*.json") if self.read(p.name[:-5]) is not None)


def _json_value(obj):
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return obj.item()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (tuple, set)):
        return list(obj)
    raise TypeError(f"cannot write {type(obj).__name__} to a run record")
