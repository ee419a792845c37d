"""Argument checks shared by every layer of the package: samples and labels, inputs a model can
take, labels it can score, and did-you-mean suggestions. A leaf module: it imports nothing of pdbviz."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def check_xy(X, y, what: str = "data", ndim: int | None = None, min_classes: int | None = None):
    """Check a set of samples ``X`` and their labels ``y`` (tensors or arrays); return them unchanged.

    Always: one label per sample, at least one sample, no NaN or infinite
    floating-point values, integer labels. ``ndim`` asks for that many
    dimensions of ``X`` (2 for a feature matrix); ``min_classes`` for at least
    that many distinct labels. Messages name ``what``.
    """
    shape = tuple(X.shape) if hasattr(X, "shape") else None
    if shape is None or not hasattr(y, "shape"):
        raise TypeError(f"{what}: samples and labels must be tensors or arrays, got {type(X).__name__} and "
                        f"{type(y).__name__}")
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"{what}: X must be a {ndim}-D array (n_samples, n_features), got shape {shape}")
    if len(y.shape) != 1 or y.shape[0] != shape[0]:
        raise ValueError(f"{what}: y must be 1-D with one label per sample: X has {shape[0]} samples, y has shape "
                         f"{tuple(y.shape)}")
    if shape[0] == 0:
        raise ValueError(f"{what} is empty")
    floating = X.is_floating_point() if isinstance(X, torch.Tensor) else np.issubdtype(np.asarray(X).dtype, np.floating)
    if floating and not bool((torch.isfinite(X).all() if isinstance(X, torch.Tensor) else np.isfinite(X).all())):
        raise ValueError(f"{what} contains NaN or infinite values")
    labels = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if labels.is_floating_point() and not bool((labels == labels.round()).all()):
        raise ValueError(f"{what}: labels must be integer class labels, got non-integer values of dtype {labels.dtype}")
    if labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{what}: labels must be integer class labels, got dtype {labels.dtype}")
    if min_classes is not None:
        n_classes = len(torch.unique(labels))
        if n_classes < min_classes:
            raise ValueError(f"{what}: y has {n_classes} class(es); separability needs at least {min_classes}")
    return X, y


def check_inputs(model: nn.Module, X: torch.Tensor, what: str = "X") -> int:
    """Run two samples through ``model``; raise ValueError naming the shapes if it cannot take them.

    Returns the number of outputs per sample.
    """
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{what} must be a torch tensor, got {type(X).__name__}")
    if len(X) == 0:
        raise ValueError(f"{what} is empty")
    if X.is_floating_point() and not torch.isfinite(X).all():
        raise ValueError(f"{what} contains NaN or infinite values")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            out = model(X[:2].to(device))
    except (RuntimeError, ValueError, IndexError, TypeError) as err:
        info = getattr(model, "pdbviz_info", None)
        expected = getattr(info, "input_shape", None)
        hint = f"; it expects {tuple(expected)}" if expected is not None else ""
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{type(model).__name__} cannot take {what} of shape {tuple(X.shape[1:])} per sample"
                         f"{hint} ({first})") from None
    finally:
        model.train(was_training)
    if out.dim() != 2:
        raise ValueError(f"{type(model).__name__} must return logits of shape (n, classes), got {tuple(out.shape)}")
    return out.shape[1]


def check_labels(y: torch.Tensor, n_classes: int, what: str = "y") -> None:
    """Labels must be integers in 0..n_classes-1."""
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{what} must be a torch tensor, got {type(y).__name__}")
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{what} must hold integer class labels, got dtype {y.dtype}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"{what} holds labels in {int(y.min())}..{int(y.max())}, but the model has {n_classes} "
                         f"outputs: labels must be in 0..{n_classes - 1}")


def did_you_mean(value, options) -> str:
    """`` Did you mean 'x'?`` for the closest option (by similarity, then by prefix or substring), or ''."""
    import difflib

    text = str(value).lower()
    close = difflib.get_close_matches(text, list(options), n=1)
    if not close:
        close = [o for o in options if o.startswith(text) or (len(text) >= 3 and text in o)][:1]
    return f" Did you mean {close[0]!r}?" if close else ""
