"""One run of a comparison: the float model of a seed, or one schedule for one seed, and its record.

A run's record is ``{"run": {...}, "history": DataFrame | None, "model": nn.Module | None}``; ``run`` holds
``schedule`` (the label), ``seed``, ``test_acc`` (%), ``train_seconds`` and ``error`` (empty unless it failed).
``compare`` and the workers of ``pdbviz.sweep`` make the same records.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

from torch import nn

from .._checks import POSITIVE_INT, POSITIVE_REAL, validate
from ..data import Data
from ..inference import evaluate
from ..models import build_model
from ..quant import quantize
from ..quant.presets import PRESETS, NamedSchedule
from ..train import fit

log = logging.getLogger(__name__)


def finetune(float_model: nn.Module, schedule, data, epochs: int = 3, lr: float = 1e-3, **fit_kwargs):
    """The fast path: quantize a trained float model and fine-tune it.

    Returns ``(quantized_model, history)``; ``float_model`` is not changed.

    Example:
        >>> from pdbviz import load_dataset, build_model
        >>> d = load_dataset("digits"); m = build_model("lenet", d.input_shape, 10)
        >>> q, h = finetune(m, "8-4-2-1", d, epochs=1, progress=False)
        >>> len(h)
        1
    """
    q = quantize(float_model, schedule)
    return q, fit(q, data, epochs=epochs, lr=lr, **fit_kwargs)


@dataclass(frozen=True)
class RunConfig:
    """How every run of a comparison trains: the float model, then each schedule.

    Example:
        >>> RunConfig(epochs=0)
        Traceback (most recent call last):
        ...
        ValueError: epochs must be a positive integer, got 0
    """

    epochs: int = 20
    finetune: bool = True
    finetune_epochs: int = 3
    lr: float = 3e-3
    finetune_lr: float = 1e-3
    batch_size: int = 64
    device: str = "auto"
    progress: bool = False

    def __post_init__(self):
        for name, constraint in _CONSTRAINTS.items():
            object.__setattr__(self, name, validate(name, getattr(self, name), constraint))


_CONSTRAINTS = {"epochs": POSITIVE_INT, "finetune_epochs": POSITIVE_INT, "batch_size": POSITIVE_INT,
                "lr": POSITIVE_REAL, "finetune_lr": POSITIVE_REAL}


def make_model(model, data: Data, seed: int, width: float = 1.0) -> nn.Module:
    """A fresh (untrained) model for ``seed``: a zoo name is built, a module is deep-copied.

    Example:
        >>> from pdbviz import load_dataset
        >>> type(make_model("lenet", load_dataset("digits"), seed=0)).__name__
        'LeNet'
    """
    if isinstance(model, str):
        if data.num_classes is None:
            raise ValueError(f"the data does not say how many classes it has; give classes= to as_data to build a "
                             f"{model!r}")
        return build_model(model, data.input_shape, data.num_classes, width=width, seed=seed)
    if isinstance(model, nn.Module):
        return copy.deepcopy(model)
    raise TypeError(f"model must be a model name or an nn.Module, got {type(model).__name__}")


def run_record(label: str, seed: int, model: nn.Module, history, seconds: float, data: Data) -> dict:
    """The record of a finished run: its test accuracy on ``data``, its history with ``schedule`` and ``seed``."""
    frame = history.to_frame()
    frame.insert(0, "seed", seed)
    frame.insert(0, "schedule", label)
    acc = evaluate(model, data)["accuracy"]
    return {"run": {"schedule": label, "seed": seed, "test_acc": 100 * acc, "train_seconds": seconds, "error": ""},
            "history": frame, "model": model}


def failed_record(label: str, seed: int, err: BaseException) -> dict:
    """The record of a run that raised ``err``: NaN accuracy, the error's type and message, no model.

    Example:
        >>> failed_record("uniform 2-bit", 0, RuntimeError("out of memory"))["run"]["error"]
        'RuntimeError: out of memory'
    """
    log.warning("schedule %s, seed %d failed: %s", label, seed, err)
    return {"run": {"schedule": label, "seed": seed, "test_acc": float("nan"), "train_seconds": float("nan"),
                    "error": f"{type(err).__name__}: {err}"}, "history": None, "model": None}


def train_float(model, data: Data, seed: int, config: RunConfig, width: float = 1.0) -> dict:
    """Train the float model of one seed; returns its run record, history and model."""
    m = make_model(model, data, seed, width)
    t0 = time.perf_counter()
    h = fit(m, data, epochs=config.epochs, lr=config.lr, seed=seed, batch_size=config.batch_size,
            device=config.device, progress=config.progress)
    return run_record(PRESETS["float"].label, seed, m, h, time.perf_counter() - t0, data)


def run_schedule(named: NamedSchedule, seed: int, data: Data, config: RunConfig, float_model: nn.Module | None,
                 model=None, width: float = 1.0) -> dict:
    """Quantize and train one schedule for one seed: fine-tuned from ``float_model``, or from scratch.

    A failure is returned as a record with its error, never raised.
    """
    try:
        t0 = time.perf_counter()
        kw = dict(seed=seed, batch_size=config.batch_size, device=config.device, progress=config.progress)
        if config.finetune:
            q, h = finetune(float_model, named.schedule, data, epochs=config.finetune_epochs, lr=config.finetune_lr,
                            **kw)
        else:
            q = quantize(make_model(model, data, seed, width), named.schedule)
            h = fit(q, data, epochs=config.epochs, lr=config.lr, **kw)
        return run_record(named.label, seed, q, h, time.perf_counter() - t0, data)
    except Exception as err:  # noqa: BLE001 - one failing schedule must not lose the others
        return failed_record(named.label, seed, err)
