"""Training and evaluation of any ``nn.Module`` on a ``Data`` object.

``fit`` knows nothing about bits: quantization-aware training is ``fit`` on a
model that ``pdbviz.quantize`` returned.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from ._checks import check_inputs, check_labels, check_xy
from .inference import evaluate, resolve_device, splits

log = logging.getLogger(__name__)

#: optimizers ``fit`` accepts by name.
OPTIMIZERS = ("adam", "adamw", "sgd")
#: learning-rate schedules ``fit`` accepts by name.
LR_SCHEDULES = ("cosine", "constant")


class DivergenceError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class History:
    """What ``fit`` measured, one record per epoch.

    Each record has ``epoch`` (1-based), ``loss`` (mean training loss),
    ``train_acc`` (accuracy on the training batches as they were seen),
    ``test_loss``, ``test_acc``, ``lr``, ``seconds`` (training time of the
    epoch, evaluation excluded) and ``complete`` (False for an epoch cut short
    by a stop). ``stop_reason`` says why training ended early, if it did.
    """

    records: list[dict] = field(default_factory=list)
    stop_reason: str | None = None

    def to_frame(self) -> pd.DataFrame:
        """The records as a DataFrame, one row per epoch."""
        cols = ["epoch", "loss", "train_acc", "test_loss", "test_acc", "lr", "seconds", "complete"]
        return pd.DataFrame(self.records, columns=cols)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def final_test_acc(self) -> float:
        """Test accuracy after the last epoch (NaN before any)."""
        return self.records[-1]["test_acc"] if self.records else float("nan")

    @property
    def seconds(self) -> float:
        """Training time of all epochs, evaluation excluded."""
        return float(sum(r["seconds"] for r in self.records))

    def _repr_html_(self) -> str:
        return self.to_frame()._repr_html_()


@dataclass
class TrainState:
    """What callbacks see. Call ``stop(reason)`` to end training after the current batch."""

    model: nn.Module
    epochs: int
    n_batches: int
    history: History
    epoch: int = 0
    batch: int = 0
    loss: float = float("nan")
    stop_requested: bool = False
    stop_reason: str | None = None

    def stop(self, reason: str = "stopped by a callback") -> None:
        """Ask ``fit`` to stop after the current batch, with ``reason`` as the history's ``stop_reason``."""
        self.stop_requested, self.stop_reason = True, reason


class Callback:
    """Base class of training callbacks; override the events you need."""

    def on_train_begin(self, state: TrainState) -> None:
        """Called once before the first epoch."""

    def on_epoch_begin(self, state: TrainState) -> None:
        """Called at the start of each epoch."""

    def on_batch_end(self, state: TrainState) -> None:
        """Called after each optimizer step."""

    def on_epoch_end(self, state: TrainState) -> None:
        """Called after each epoch, also one cut short by a stop."""

    def on_train_end(self, state: TrainState) -> None:
        """Called once when training ends, also after a stop or an interrupt."""


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=lambda s: print(s.epoch))``."""

    def __init__(self, **events: Callable[[TrainState], None]):
        allowed = {n for n in dir(Callback) if n.startswith("on_")}
        unknown = set(events) - allowed
        if unknown:
            raise ValueError(f"unknown callback events {sorted(unknown)}; allowed: {sorted(allowed)}")
        for name, fn in events.items():
            setattr(self, name, fn)


class StopEvent(Callback):
    """Stops training when ``event.is_set()``: the bridge for a UI's Stop button (a ``threading.Event``)."""

    def __init__(self, event):
        self.event = event

    def on_batch_end(self, state: TrainState) -> None:
        """Stop training once the event is set."""
        if self.event.is_set():
            state.stop("stopped by the user")


def _augment(x: torch.Tensor, kind: str | None, gen: torch.Generator) -> torch.Tensor:
    if kind is None:
        return x
    if kind != "crop-flip":
        raise ValueError(f"augment must be None or 'crop-flip', got {kind!r}")
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy, dx = torch.randint(0, 9, (2,), generator=gen).tolist()  # one shift per batch: cheap, still varied
    x = padded[:, :, dy:dy + h, dx:dx + w]
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(3), x)


def _optimizer(name, params, lr, weight_decay):
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")


def _check_positive(name, value, kind=int):
    ok = isinstance(value, kind) and not isinstance(value, bool) and value > 0
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise ValueError(f"{name} must be a positive {'integer' if kind is int else 'number'}, got {value!r}")


def fit(model: nn.Module, data, epochs: int = 10, lr: float = 1e-3, batch_size: int = 64,
        optimizer: str = "adam", seed: int = 0, device: str | torch.device = "auto",
        callbacks: Sequence[Callback] = (), progress: bool = True, weight_decay: float = 0.0,
        lr_schedule: str = "cosine", augment: str | None | bool = True) -> History:
    """Train ``model`` in place with cross-entropy and return its ``History``.

    Args:
        model: any classifier ``nn.Module`` (quantized or not).
        data: a ``Data`` (from ``load_dataset``) or ``(X_train, y_train[, X_test, y_test])``.
        epochs, lr, batch_size: the usual.
        optimizer: ``"adam"`` (default), ``"adamw"`` or ``"sgd"`` (momentum 0.9, Nesterov).
        seed: seeds the shuffling, augmentation and torch; same seed, same machine,
            same numbers.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...
        callbacks: ``Callback`` objects; any of them may call ``state.stop()``.
        progress: show a ``tqdm`` progress bar (terminal and notebook).
        lr_schedule: ``"cosine"`` (anneal to 0 over the epochs) or ``"constant"``.
        augment: ``True`` uses the dataset's own augmentation (crop-flip for
            CIFAR), ``False``/``None`` none, or ``"crop-flip"``.

    A Ctrl-C (KeyboardInterrupt) or a callback's stop ends training after the
    current batch: the model is left in eval mode with its last weights, and
    the history holds every finished epoch plus the interrupted one
    (``complete=False``). A NaN or infinite loss raises ``DivergenceError``.

    Example:
        >>> from pdbviz import load_dataset, build_model
        >>> d = load_dataset("digits"); m = build_model("mlp", d.input_shape, 10)
        >>> h = fit(m, d, epochs=1, progress=False)
        >>> h.to_frame().columns.tolist()[:3]
        ['epoch', 'loss', 'train_acc']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    Xtr, ytr, Xte, yte, data_aug = splits(data)
    check_xy(Xtr, ytr, "the training split")
    if Xte is not None:
        check_xy(Xte, yte, "the test split")
    _check_positive("epochs", epochs)
    _check_positive("batch_size", batch_size)
    _check_positive("lr", lr, float)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    aug = data_aug if augment is True else (None if augment in (False, None) else augment)
    if aug not in (None, "crop-flip"):
        raise ValueError(f"augment must be True, False, None or 'crop-flip', got {augment!r}")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be pdbviz.Callback objects, got {type(cb).__name__}")
    dev = resolve_device(device)
    model.to(dev)
    n_out = check_inputs(model, Xtr, "the training inputs")
    check_labels(ytr, n_out, "the training labels")
    if Xte is not None:
        check_labels(yte, check_inputs(model, Xte, "the test inputs"), "the test labels")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    Xtr_d, ytr_d = Xtr.to(dev), ytr.to(dev)
    opt = _optimizer(optimizer, model.parameters(), lr, weight_decay)
    n = len(Xtr)
    n_batches = math.ceil(n / batch_size)
    total_steps = epochs * n_batches
    history = History()
    state = TrainState(model, epochs, n_batches, history)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total_steps, desc="fit", unit="batch", leave=False)
    step, seen, loss_sum, correct, lr_now, t0 = 0, 0, 0.0, 0, lr, time.perf_counter()
    for cb in callbacks:
        cb.on_train_begin(state)
    try:
        for epoch in range(1, epochs + 1):
            state.epoch, state.batch = epoch, 0
            for cb in callbacks:
                cb.on_epoch_begin(state)
            model.train()
            perm = torch.randperm(n, generator=gen).to(dev)
            t0, loss_sum, correct, seen, complete = time.perf_counter(), 0.0, 0, 0, True
            lr_now = lr
            for b in range(n_batches):
                if lr_schedule == "cosine":
                    lr_now = 0.5 * lr * (1 + math.cos(math.pi * step / total_steps))
                    for g in opt.param_groups:
                        g["lr"] = lr_now
                idx = perm[b * batch_size:(b + 1) * batch_size]
                xb, yb = _augment(Xtr_d[idx], aug, gen), ytr_d[idx]
                out = model(xb)
                loss = F.cross_entropy(out, yb)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise DivergenceError(
                        f"training loss became {loss_value} at epoch {epoch}, batch {b + 1}, with lr={lr_now:g}; "
                        "try a smaller lr"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                loss_sum += loss_value * len(yb)
                correct += (out.argmax(1) == yb).sum().item()
                seen += len(yb)
                state.batch, state.loss = b + 1, loss_value
                if bar is not None:
                    bar.update(1)
                    if b == n_batches - 1 or b % 10 == 0:
                        bar.set_postfix(epoch=epoch, loss=f"{loss_value:.3f}")
                for cb in callbacks:
                    cb.on_batch_end(state)
                if state.stop_requested:
                    complete = False if b < n_batches - 1 else True
                    break
            seconds = time.perf_counter() - t0
            history.records.append(_epoch_record(model, epoch, loss_sum, correct, seen, lr_now, seconds, complete,
                                                 (Xte, yte)))
            for cb in callbacks:
                cb.on_epoch_end(state)
            if state.stop_requested:
                history.stop_reason = state.stop_reason
                break
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        log.warning("training interrupted at epoch %d, batch %d; the model keeps its last weights",
                    state.epoch, state.batch)
        if seen:
            history.records.append(_epoch_record(model, state.epoch, loss_sum, correct, seen, lr_now,
                                                 time.perf_counter() - t0, False, (Xte, yte)))
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    for cb in callbacks:
        cb.on_train_end(state)
    return history


def _epoch_record(model, epoch, loss_sum, correct, seen, lr, seconds, complete, test):
    rec = {"epoch": epoch, "loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
           "test_loss": float("nan"), "test_acc": float("nan"), "lr": lr, "seconds": seconds, "complete": complete}
    if test[0] is not None:
        ev = evaluate(model, (None, None, *test))
        rec["test_loss"], rec["test_acc"] = ev["loss"], ev["accuracy"]
    return rec
