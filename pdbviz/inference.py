"""Inference on any model: the device a run uses, the splits of a dataset, and ``evaluate``.

Below training and analysis in the house: both use it, and it knows nothing
about bits or about training.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._checks import check_inputs, check_labels, check_xy


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or a torch.device, got {device!r}") from None


def splits(data):
    """Accept a ``Data`` or ``(X_train, y_train[, X_test, y_test])``."""
    if hasattr(data, "X_train"):
        return data.X_train, data.y_train, data.X_test, data.y_test, getattr(data, "augment", None)
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        xs = list(data) + [None, None] * (len(data) == 2)
        return (*xs, None)
    raise TypeError("data must be a pdbviz Data object or a tuple (X_train, y_train[, X_test, y_test]) of tensors")


@torch.no_grad()
def evaluate(model: nn.Module, data, split: str = "test", batch_size: int = 1024,
             device: str | torch.device | None = None) -> dict[str, float]:
    """Accuracy and mean cross-entropy loss of ``model`` on a split.

    Returns ``{"accuracy": ..., "loss": ..., "n": ...}``. The model's
    train/eval mode is restored afterwards.

    Example:
        >>> from pdbviz import load_dataset, build_model
        >>> d = load_dataset("digits"); m = build_model("lenet", d.input_shape, 10)
        >>> 0 <= evaluate(m, d)["accuracy"] <= 1
        True
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    Xtr, ytr, Xte, yte, _ = splits(data)
    X, y = (Xtr, ytr) if split == "train" else (Xte, yte)
    if X is None:
        raise ValueError("data has no test split; pass (X_train, y_train, X_test, y_test)")
    check_xy(X, y, f"the {split} split")
    param = next(model.parameters(), None)
    device = resolve_device(device) if device is not None else (param.device if param is not None else torch.device("cpu"))
    check_labels(y, check_inputs(model, X, f"the {split} inputs"), f"the {split} labels")
    was_training = model.training
    model.eval()
    correct, total_loss = 0, 0.0
    try:
        for i in range(0, len(X), batch_size):
            xb, yb = X[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
            out = model(xb)
            total_loss += F.cross_entropy(out, yb, reduction="sum").item()
            correct += (out.argmax(1) == yb).sum().item()
    finally:
        model.train(was_training)
    return {"accuracy": correct / len(X), "loss": total_loss / len(X), "n": len(X)}
