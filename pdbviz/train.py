"""Training of any ``nn.Module`` on any data: ``fit`` (its history and callbacks live in ``pdbviz.history``).

``fit`` knows nothing about bits: quantization-aware training is ``fit`` on a
model that ``pdbviz.quantize`` returned. Data in any form goes through
``as_data`` and is read one batch at a time (a Dataset or DataLoader is
streamed, never materialised).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ._checks import POSITIVE_INT, POSITIVE_REAL, validate
from .data import Data, as_data
from .history import Callback, DivergenceError, History, LambdaCallback, StopEvent, TrainState
from .inference import (Loss, Output, check_batch_labels, check_model_fits, loss_sum, resolve_device, run_evaluation,
                        select_output)

log = logging.getLogger(__name__)

#: optimizers ``fit`` accepts by name.
OPTIMIZERS = ("adam", "adamw", "sgd")
#: learning-rate schedules ``fit`` accepts by name.
LR_SCHEDULES = ("cosine", "constant")
#: numeric precisions ``fit`` accepts: float32, or bfloat16 autocast (``torch.autocast``).
PRECISIONS = ("fp32", "bf16")


def _augment(x: torch.Tensor, augment: str | None, gen: torch.Generator) -> torch.Tensor:
    if augment is None:
        return x
    if x.dim() != 4:
        raise ValueError(f"augment='crop-flip' needs images (n, C, H, W), got inputs of shape {tuple(x.shape)}")
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


@dataclass
class _Plan:
    """Everything an epoch needs, checked once before training."""

    model: nn.Module
    data: Data
    device: torch.device
    optimizer: torch.optim.Optimizer
    scheduler: object
    batch_size: int
    n_batches: int
    n_out: int
    augment: str | None
    generator: torch.Generator
    callbacks: Sequence[Callback]
    output: Output
    loss: Loss
    autocast: object
    scaler: object
    num_workers: int
    train: object  # the training split, or its copy on the device (``_ResidentSplit``)
    test: object
    channels_last: bool
    forward: object  # the model, or its torch.compile wrapper (same parameters)


class _ResidentSplit:
    """An in-memory split copied to the training device once: batches are sliced there, no per-batch copies.

    Batches come in the same order as ``Split.batches`` gives them for the same generator.
    """

    in_memory = True

    def __init__(self, X: torch.Tensor, y: torch.Tensor):
        self.X, self.y = X, y

    def __len__(self) -> int:
        return len(self.y)

    def n_batches(self, batch_size: int) -> int:
        return -(-len(self.y) // batch_size)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, device=None, num_workers: int = 0,
                generator: torch.Generator | None = None):
        gen = generator if generator is not None else torch.Generator().manual_seed(seed)
        n = len(self.y)
        order = torch.randperm(n, generator=gen).to(self.y.device) if shuffle else None
        for i in range(0, n, batch_size):
            idx = order[i:i + batch_size] if order is not None else slice(i, i + batch_size)
            yield self.X[idx], self.y[idx]


def _on_device(split, device: torch.device):
    """``split`` as ``fit`` reads it on ``device``: in-memory tensors are moved there once (if they fit),
    anything else is streamed batch by batch (pinned memory, non-blocking copies on CUDA)."""
    if split is None or not split.in_memory or (split.X.device == device and split.y.device == device):
        return split
    try:
        return _ResidentSplit(split.X.to(device), split.y.to(device))
    except torch.OutOfMemoryError:
        log.warning("the %s samples do not fit on %s; they are copied there batch by batch", len(split), device)
        return split


def _autocast(precision, amp, dev: torch.device):
    """The autocast context factory and gradient scaler for ``precision`` and ``amp`` (None, None: float32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not isinstance(amp, bool):
        raise ValueError(f"amp must be True or False, got {amp!r}")
    if precision == "bf16":
        if amp:
            raise ValueError("amp=True and precision='bf16' both ask for autocast; pass only one of them")
        if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"precision='bf16' needs a device with bfloat16 support; {dev} has none")
        return (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)), None
    if not amp:
        return None, None
    dtype = torch.float16 if dev.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler(dev.type) if dev.type == "cuda" else None
    return (lambda: torch.autocast(dev.type, dtype=dtype)), scaler


def _prepare(model, data, epochs, lr, batch_size, optimizer, seed, device, callbacks, weight_decay, lr_schedule,
             augment, output, loss, amp, num_workers, precision="fp32", channels_last=False, compile=False) -> _Plan:
    """Check every argument and the data against the model once; build the optimizer and the lr schedule."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    data = as_data(data)
    validate("epochs", epochs, POSITIVE_INT)
    validate("batch_size", batch_size, POSITIVE_INT)
    validate("lr", lr, POSITIVE_REAL)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    aug = data.augment if augment is True else (None if augment in (False, None) else augment)
    if aug not in (None, "crop-flip"):
        raise ValueError(f"augment must be True, False, None or 'crop-flip', got {augment!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"num_workers must be an integer >= 0, got {num_workers!r}")
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be a function (logits, labels) -> scalar, got {type(loss).__name__}")
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be pdbviz.Callback objects, got {type(cb).__name__}")
    if not isinstance(channels_last, bool):
        raise ValueError(f"channels_last must be True or False, got {channels_last!r}")
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be True or False, got {compile!r}")
    dev = resolve_device(device)
    autocast, scaler = _autocast(precision, amp, dev)
    model.to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    n_out = check_model_fits(model, data, "train", output)
    if data.test is not None:
        check_model_fits(model, data, "test", output)
    torch.manual_seed(seed)
    opt = _optimizer(optimizer, model.parameters(), lr, weight_decay)
    n_batches = data.train.n_batches(batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * n_batches) \
        if lr_schedule == "cosine" else None
    return _Plan(model, data, dev, opt, sched, batch_size, n_batches, n_out, aug,
                 torch.Generator().manual_seed(seed), list(callbacks), output, loss, autocast, scaler, num_workers,
                 _on_device(data.train, dev), _on_device(data.test, dev), channels_last,
                 torch.compile(model) if compile else model)


def fit(model: nn.Module, data, epochs: int = 10, lr: float = 1e-3, batch_size: int = 64,
        optimizer: str = "adam", seed: int = 0, device: str | torch.device = "auto",
        callbacks: Sequence[Callback] = (), progress: bool = True, weight_decay: float = 0.0,
        lr_schedule: str = "cosine", augment: str | None | bool = True, output: Output = None, loss: Loss = None,
        amp: bool = False, num_workers: int = 0, precision: str = "fp32", channels_last: bool = False,
        compile: bool = False) -> History:
    """Train ``model`` in place and return its ``History``.

    Args:
        model: any classifier ``nn.Module`` (quantized or not).
        data: any form ``as_data`` accepts: a ``Data``, ``(X, y[, X_test, y_test])``
            tensors or arrays, a DataFrame, a Dataset or DataLoader (streamed).
        epochs, lr, batch_size: the usual (a DataLoader keeps its own batch size).
        optimizer: ``"adam"`` (default), ``"adamw"`` or ``"sgd"`` (momentum 0.9, Nesterov).
        seed: seeds the shuffling, augmentation and torch; same seed, same machine,
            same numbers.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``...; the model is moved there.
        callbacks: ``Callback`` objects; any of them may call ``state.stop()``.
        progress: show a ``tqdm`` progress bar (terminal and notebook).
        lr_schedule: ``"cosine"`` (anneal to 0 over the steps, torch's
            ``CosineAnnealingLR``) or ``"constant"``.
        augment: ``True`` uses the dataset's own augmentation (crop-flip for
            CIFAR), ``False``/``None`` none, or ``"crop-flip"``.
        output: where the logits are in the model's output (an index, a key or
            a function; see ``select_output``).
        loss: ``loss(logits, labels) -> scalar`` (default cross-entropy).
        amp: automatic mixed precision (float16 with gradient scaling on CUDA,
            bfloat16 on CPU); weights are quantized in float32, the parameters' dtype.
        num_workers: DataLoader workers for a Dataset (pinned memory on CUDA).
        precision: ``"fp32"`` (default) or ``"bf16"``: bfloat16 autocast on any
            device, without gradient scaling (the quantizers then see
            bfloat16 activations; weights are quantized in float32).
        channels_last: store the model's 4-D weights and the image batches in
            the channels-last memory format (faster convolutions on GPUs).
        compile: train through ``torch.compile(model)`` (the same parameters;
            the per-epoch evaluation stays eager). A quantized model compiles
            into one graph, whatever its depth; a last batch of another size
            compiles once more, with a dynamic batch dimension.

    Tensors in memory are moved to the device once, before the first epoch;
    a Dataset or DataLoader is copied batch by batch, from pinned memory and
    without blocking on CUDA.

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
    plan = _prepare(model, data, epochs, lr, batch_size, optimizer, seed, device, callbacks, weight_decay,
                    lr_schedule, augment, output, loss, amp, num_workers, precision, channels_last, compile)
    history = History()
    state = TrainState(model, epochs, plan.n_batches, history)
    bar = _progress_bar(progress, epochs * plan.n_batches)
    tally = _Tally()
    for cb in plan.callbacks:
        cb.on_train_begin(state)
    try:
        for epoch in range(1, epochs + 1):
            state.epoch, state.batch = epoch, 0
            for cb in plan.callbacks:
                cb.on_epoch_begin(state)
            tally = _Tally()
            complete = _train_epoch(plan, state, tally, bar)
            history.records.append(_epoch_record(plan, epoch, tally, complete))
            for cb in plan.callbacks:
                cb.on_epoch_end(state)
            if state.stop_requested:
                history.stop_reason = state.stop_reason
                break
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
        log.warning("training interrupted at epoch %d, batch %d; the model keeps its last weights",
                    state.epoch, state.batch)
        if tally.seen:
            history.records.append(_epoch_record(plan, state.epoch, tally, False))
    finally:
        if bar is not None:
            bar.close()
        model.eval()
    for cb in plan.callbacks:
        cb.on_train_end(state)
    return history


@dataclass
class _Tally:
    """Running totals of one epoch."""

    seen: int = 0
    loss_sum: float = 0.0
    correct: int = 0
    lr: float = float("nan")
    t0: float = field(default_factory=time.perf_counter)


def _train_epoch(plan: _Plan, state: TrainState, tally: _Tally, bar) -> bool:
    """One pass over the training split; False when a stop cut it short."""
    model, split = plan.model, plan.train
    model.train()
    streamed = not split.in_memory
    for b, (x, y) in enumerate(split.batches(plan.batch_size, shuffle=True, device=plan.device,
                                             num_workers=plan.num_workers, generator=plan.generator)):
        if streamed:  # in-memory data was checked once, when it was converted
            check_batch_labels(y, plan.n_out, "the training labels")
            if x.is_floating_point() and not torch.isfinite(x).all():
                raise ValueError(f"training batch {b + 1} contains NaN or infinite inputs")
        xb = _augment(x, plan.augment, plan.generator)
        if plan.channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        tally.lr = plan.optimizer.param_groups[0]["lr"]
        loss_value, correct = _step(plan, xb, y)
        if not math.isfinite(loss_value):
            raise DivergenceError(f"training loss became {loss_value} at epoch {state.epoch}, batch {b + 1}, with "
                                  f"lr={tally.lr:g}; try a smaller lr")
        tally.seen += len(y)
        tally.loss_sum += loss_value * len(y)
        tally.correct += correct
        state.batch, state.loss = b + 1, loss_value
        if bar is not None:
            bar.update(1)
            if b == plan.n_batches - 1 or b % 10 == 0:
                bar.set_postfix(epoch=state.epoch, loss=f"{loss_value:.3f}")
        for cb in plan.callbacks:
            cb.on_batch_end(state)
        if state.stop_requested:
            return b >= plan.n_batches - 1
    return True


def _step(plan: _Plan, x: torch.Tensor, y: torch.Tensor) -> tuple[float, int]:
    """Forward, backward and optimizer step on one batch; returns the loss and the number correct."""
    if plan.autocast is not None:
        with plan.autocast():
            logits = select_output(plan.forward(x), plan.output)
            loss = loss_sum(logits, y, plan.loss) / len(y)
    else:
        logits = select_output(plan.forward(x), plan.output)
        loss = loss_sum(logits, y, plan.loss) / len(y)
    plan.optimizer.zero_grad(set_to_none=True)
    if plan.scaler is not None:
        plan.scaler.scale(loss).backward()
        plan.scaler.step(plan.optimizer)
        plan.scaler.update()
    else:
        loss.backward()
        plan.optimizer.step()
    if plan.scheduler is not None:
        plan.scheduler.step()
    return loss.item(), int((logits.argmax(1) == y).sum())


def _progress_bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="fit", unit="batch", leave=False)


def _epoch_record(plan: _Plan, epoch: int, tally: _Tally, complete: bool) -> dict:
    seconds = time.perf_counter() - tally.t0
    rec = {"epoch": epoch, "loss": tally.loss_sum / max(tally.seen, 1), "train_acc": tally.correct / max(tally.seen, 1),
           "test_loss": float("nan"), "test_acc": float("nan"), "lr": tally.lr, "seconds": seconds,
           "complete": complete}
    if plan.test is not None:
        ev = run_evaluation(plan.model, plan.test, 1024, plan.device, plan.n_out, plan.output, plan.loss)
        rec["test_loss"], rec["test_acc"] = ev["loss"], ev["accuracy"]
    return rec


__all__ = ["LR_SCHEDULES", "OPTIMIZERS", "PRECISIONS", "Callback", "DivergenceError", "History", "LambdaCallback",
           "StopEvent", "TrainState", "fit"]
