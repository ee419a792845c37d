"""One run of a comparison: the float model of a seed, or one schedule for one seed, and its record.

A run's record is ``{"run": {...}, "history": DataFrame | None, "model": nn.Module | None}``; ``run`` holds
``schedule`` (the label), ``seed``, ``test_acc`` (%), ``train_seconds``, ``error`` (empty unless it failed) and
``correct``: the run's per-image correctness on the test split, in the split's order, as
``pdbviz.stats.encode_correct`` text (``""`` for a failed run or data without a test split); the paired
intervals of ``pdbviz.stats`` and ``pdbviz.claims`` read it. ``compare`` and the workers of ``pdbviz.sweep``
make the same records.

The entry ``"float:long"`` is the float control trained as long as the quantized runs: with fine-tuning, the
float model of the seed trained ``finetune_epochs`` more at ``finetune_lr`` (as each quantized run is
fine-tuned from it); from scratch, a float model trained ``epochs`` like each quantized run.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._checks import POSITIVE_INT, POSITIVE_REAL, validate
from ..data import Data
from ..analysis.entries import FLOAT_CONTROL
from ..inference import check_batch_labels, check_model_fits, evaluate, resolve_device, select_output
from ..models import build_model
from ..quant import quantize
from ..quant.presets import PRESETS, NamedSchedule
from ..stats import encode_correct
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


@torch.no_grad()
def test_correct(model: nn.Module, data: Data, batch_size: int = 1024) -> np.ndarray | None:
    """Per-image correctness of ``model`` on the test split of ``data``, in the split's order (no shuffling);
    None when ``data`` has no test split. The model stays on its device; its train/eval mode is restored.

    Example:
        >>> from pdbviz import load_dataset, build_model
        >>> d = load_dataset("digits")
        >>> c = test_correct(build_model("lenet", d.input_shape, 10), d)
        >>> c.shape, c.dtype
        ((450,), dtype('bool'))
    """
    split = data.split("test", required=False)
    if split is None:
        return None
    dev = resolve_device(None, model)
    n_out = check_model_fits(model, data, "test")
    was_training = model.training
    model.eval()
    out = []
    try:
        for x, y in split.batches(batch_size, device=dev):
            if not split.in_memory:
                check_batch_labels(y, n_out, "the test labels")
            out.append((select_output(model(x)).argmax(1) == y).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy().astype(bool) if out else np.zeros(0, dtype=bool)


def run_record(label: str, seed: int, model: nn.Module, history, seconds: float, data: Data) -> dict:
    """The record of a finished run: its test accuracy on ``data`` and its per-image correctness (``correct``,
    see the module docstring), its history with ``schedule`` and ``seed``."""
    frame = history.to_frame()
    frame.insert(0, "seed", seed)
    frame.insert(0, "schedule", label)
    correct = test_correct(model, data)
    if correct is not None and len(correct):
        acc, text = float(correct.mean()), encode_correct(correct)
    else:
        acc, text = evaluate(model, data)["accuracy"], ""
    return {"run": {"schedule": label, "seed": seed, "test_acc": 100 * acc, "train_seconds": seconds, "error": "",
                    "correct": text}, "history": frame, "model": model}


def failed_record(label: str, seed: int, err: BaseException) -> dict:
    """The record of a run that raised ``err``: NaN accuracy, the error's type and message, no model.

    Example:
        >>> failed_record("uniform 2-bit", 0, RuntimeError("out of memory"))["run"]["error"]
        'RuntimeError: out of memory'
    """
    log.warning("schedule %s, seed %d failed: %s", label, seed, err)
    return {"run": {"schedule": label, "seed": seed, "test_acc": float("nan"), "train_seconds": float("nan"),
                    "error": f"{type(err).__name__}: {err}", "correct": ""}, "history": None, "model": None}


def train_float(model, data: Data, seed: int, config: RunConfig, width: float = 1.0) -> dict:
    """Train the float model of one seed; returns its run record, history and model."""
    m = make_model(model, data, seed, width)
    t0 = time.perf_counter()
    h = fit(m, data, epochs=config.epochs, lr=config.lr, seed=seed, batch_size=config.batch_size,
            device=config.device, progress=config.progress)
    return run_record(PRESETS["float"].label, seed, m, h, time.perf_counter() - t0, data)


def float_control_label(config: RunConfig) -> str:
    """The label of the ``"float:long"`` control under ``config``: how much longer than the float run it trains.

    Example:
        >>> float_control_label(RunConfig(finetune_epochs=3)), float_control_label(RunConfig(finetune=False))
        ('float-32 (+3 epochs)', 'float-32 (from scratch, 20 epochs)')
    """
    flt = PRESETS["float"].label
    if config.finetune:
        return f"{flt} (+{config.finetune_epochs} epoch{'s' if config.finetune_epochs != 1 else ''})"
    return f"{flt} (from scratch, {config.epochs} epoch{'s' if config.epochs != 1 else ''})"


def is_float_control(named: NamedSchedule) -> bool:
    """True for the ``"float:long"`` entry (the float control trained as long as the quantized runs)."""
    return named.entry == FLOAT_CONTROL and named.schedule is None


def label_runs(resolved: list, config: RunConfig) -> list:
    """The resolved ``(NamedSchedule, error)`` pairs with the float control labelled by ``float_control_label``.

    Example:
        >>> label_runs([(NamedSchedule("float:long", "float-32 (long)", "float", None), "")], RunConfig())[0][0].label
        'float-32 (+3 epochs)'
    """
    return [(NamedSchedule(n.entry, float_control_label(config), n.shape, None), e) if is_float_control(n) else (n, e)
            for n, e in resolved]


def runs_of(named: NamedSchedule) -> bool:
    """True when ``named`` is trained per seed by ``run_schedule``: a quantized schedule or the float control."""
    return named.schedule is not None or is_float_control(named)


def run_schedule(named: NamedSchedule, seed: int, data: Data, config: RunConfig, float_model: nn.Module | None,
                 model=None, width: float = 1.0) -> dict:
    """Quantize and train one schedule for one seed: fine-tuned from ``float_model``, or from scratch; the float
    control (``"float:long"``) trains the float model as long as the quantized runs (module docstring).

    A failure is returned as a record with its error, never raised.
    """
    try:
        t0 = time.perf_counter()
        kw = dict(seed=seed, batch_size=config.batch_size, device=config.device, progress=config.progress)
        control = is_float_control(named)
        if config.finetune:
            if control:
                q = copy.deepcopy(float_model)
                h = fit(q, data, epochs=config.finetune_epochs, lr=config.finetune_lr, **kw)
            else:
                q, h = finetune(float_model, named.schedule, data, epochs=config.finetune_epochs,
                                lr=config.finetune_lr, **kw)
        else:
            q = make_model(model, data, seed, width)
            if not control:
                q = quantize(q, named.schedule)
            h = fit(q, data, epochs=config.epochs, lr=config.lr, **kw)
        return run_record(named.label, seed, q, h, time.perf_counter() - t0, data)
    except Exception as err:  # noqa: BLE001 - one failing schedule must not lose the others
        return failed_record(named.label, seed, err)
