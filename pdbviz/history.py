"""What a training run records and who may watch it: ``History``, ``TrainState`` and the callbacks of ``fit``.

A callback sees the ``TrainState`` after every batch and every epoch and may
stop the run; ``History`` keeps one record per epoch and turns into a
DataFrame. ``pdbviz.fit`` (in ``pdbviz.train``) drives them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
from torch import nn


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
