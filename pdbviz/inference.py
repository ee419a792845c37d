"""Inference on any model and any data: devices, output selection, ``evaluate`` and ``calibrate``.

Below training and analysis in the house: both use it, and it knows nothing
about bits or about training. Data in any form goes through ``as_data``
and is read one batch at a time.

Models whose output is not a plain logits tensor (a dict, a tuple, an
auxiliary head) take an ``output`` selector: an index, a key, or a function
of the output returning the logits.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .data import Data, as_data
from .quant import recalibrate_batchnorm

Output = int | str | Callable | None
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None


def resolve_device(device: str | torch.device | None = "auto", model: nn.Module | None = None) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``None`` -> the model's device (CPU without a model)."""
    if device is None:
        param = next(model.parameters(), None) if model is not None else None
        return param.device if param is not None else torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for, but this torch build sees no CUDA device; use 'auto' "
                         "or 'cpu'")
    return dev


def select_output(out, output: Output = None) -> torch.Tensor:
    """The logits in a model's output: ``out`` itself, ``out[output]`` (an index or a key), or ``output(out)``."""
    if output is not None:
        if callable(output):
            return output(out)
        try:
            return out[output]
        except (KeyError, IndexError, TypeError):
            keys = list(out) if isinstance(out, dict) else f"{len(out)} items" if isinstance(out, (tuple, list)) \
                else type(out).__name__
            raise ValueError(f"output {output!r} does not select anything in the model's output ({keys})") from None
    if isinstance(out, torch.Tensor):
        return out
    if hasattr(out, "logits") and isinstance(out.logits, torch.Tensor):
        return out.logits
    what = f"a dict with keys {list(out)}" if isinstance(out, dict) else f"a {type(out).__name__}"
    raise ValueError(f"the model returns {what}, not a logits tensor: pass output= (an index, a key, or a "
                     "function of the output) to say where the logits are")


def forward_check(model: nn.Module, x: torch.Tensor, what: str = "the inputs"):
    """Run two samples through ``model`` (eval mode, no autograd) and return its output.

    A model that cannot take the inputs raises ValueError naming the shapes and the dtype.
    """
    if x.is_floating_point() and not torch.isfinite(x).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    device = resolve_device(None, model)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(x[:2].to(device))
    except (RuntimeError, ValueError, IndexError, TypeError) as err:
        info = getattr(model, "pdbviz_info", None)
        expected = getattr(info, "input_shape", None)
        hint = f"; it expects {tuple(expected)}" if expected is not None else ""
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{type(model).__name__} cannot take {what} of shape {tuple(x.shape[1:])} per sample "
                         f"({x.dtype}){hint} ({first})") from None
    finally:
        model.train(was_training)
    return out


def probe(model: nn.Module, x: torch.Tensor, output: Output = None, what: str = "the inputs") -> int:
    """``forward_check`` that also finds the logits (see ``select_output``); returns their number per sample."""
    logits = select_output(forward_check(model, x, what), output)
    if logits.dim() != 2:
        raise ValueError(f"{type(model).__name__} must return logits of shape (n, classes), got {tuple(logits.shape)};"
                         " pass output= to select them")
    return logits.shape[1]


def check_batch_labels(y: torch.Tensor, n_out: int, what: str) -> None:
    """Labels must lie in ``range(n_out)`` (the model's outputs)."""
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_out):
        raise ValueError(f"{what} hold labels in {int(y.min())}..{int(y.max())}, but the model has {n_out} outputs: "
                         f"labels must be in 0..{n_out - 1}")


def check_model_fits(model: nn.Module, data: Data, split: str, output: Output = None) -> int:
    """Probe the model on the split's first samples and check its labels; returns the number of outputs."""
    s = data.split(split)
    x, _ = s.first()
    word = "training" if split == "train" else split
    n_out = probe(model, x, output, f"the {word} inputs")
    labels = s.labels()
    if labels is not None:
        check_batch_labels(labels, n_out, f"the {word} labels")
    if data.num_classes is not None and data.num_classes > n_out:
        raise ValueError(f"the data has {data.num_classes} classes but the model has {n_out} outputs")
    return n_out


def loss_sum(logits: torch.Tensor, y: torch.Tensor, loss: Loss = None) -> torch.Tensor:
    """The summed loss of a batch (cross-entropy by default; a custom ``loss`` returns the batch mean)."""
    if loss is None:
        return F.cross_entropy(logits, y, reduction="sum")
    return loss(logits, y) * len(y)


@torch.no_grad()
def run_evaluation(model: nn.Module, split, batch_size: int, device: torch.device, n_out: int, output: Output = None,
                   loss: Loss = None, what: str = "test") -> dict[str, float]:
    """Accuracy and mean loss over one split, batch by batch (no input checks beyond the labels' range)."""
    was_training = model.training
    model.eval()
    correct, total, n = 0, 0.0, 0
    try:
        for x, y in split.batches(batch_size, device=device):
            if not split.in_memory:
                check_batch_labels(y, n_out, f"the {what} labels")
            logits = select_output(model(x), output)
            total += float(loss_sum(logits, y, loss))
            correct += int((logits.argmax(1) == y).sum())
            n += len(y)
    finally:
        model.train(was_training)
    return {"accuracy": correct / n, "loss": total / n, "n": n}


def evaluate(model: nn.Module, data, split: str | None = None, batch_size: int = 1024,
             device: str | torch.device | None = None, output: Output = None, loss: Loss = None) -> dict[str, float]:
    """Accuracy and mean loss of ``model`` on a split of ``data`` (any form ``as_data`` accepts).

    ``split`` is ``"test"`` or ``"train"``; by default the test split, or the
    only split of data that has one (``(X, y)`` evaluates on those samples).
    Returns ``{"accuracy": ..., "loss": ..., "n": ..., "split": ...}``.
    ``device`` (default: where the model is) receives the model, which is
    moved there in place, and each batch. The model's train/eval mode is
    restored afterwards.

    Example:
        >>> from pdbviz import load_dataset, build_model
        >>> d = load_dataset("digits"); m = build_model("lenet", d.input_shape, 10)
        >>> 0 <= evaluate(m, d)["accuracy"] <= 1
        True
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    data = as_data(data)
    if split is None:
        split = "test" if data.test is not None else "train"
    s = data.split(split)
    dev = resolve_device(device, model)
    model.to(dev)
    n_out = check_model_fits(model, data, split, output)
    return {**run_evaluation(model, s, batch_size, dev, n_out, output, loss, split), "split": split}


def calibrate(model: nn.Module, data, n_samples: int | None = 2048, batch_size: int = 256,
              device: str | torch.device | None = None, split: str = "train") -> nn.Module:
    """Post-training calibration: re-estimate BatchNorm statistics under the quantized weights, in place.

    Quantizing weights changes the scale of each layer's output, so the
    running statistics the float model learned no longer fit; without
    fine-tuning, a quantized model's accuracy can collapse. This forwards at
    most ``n_samples`` samples of ``split`` (any data form) in train mode for
    the BatchNorm layers only (cumulative averages), and returns the model in
    eval mode. ``quantize(..., calibrate=inputs)`` does the same.

    Example:
        >>> from pdbviz import load_dataset, build_model, quantize
        >>> d = load_dataset("digits"); q = quantize(build_model("lenet", d.input_shape, 10), "2")
        >>> calibrate(q, d).training
        False
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    data = as_data(data)
    s = data.split(split)
    dev = resolve_device(device, model)
    model.to(dev)
    forward_check(model, s.first()[0], f"the {split} inputs")
    if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1):
        raise ValueError(f"n_samples must be a positive integer or None, got {n_samples!r}")
    max_batches = None if n_samples is None else -(-n_samples // batch_size)
    batches = (x for x, _ in s.batches(batch_size, shuffle=True, seed=0, device=dev))
    return recalibrate_batchnorm(model, batches, max_batches=max_batches)
