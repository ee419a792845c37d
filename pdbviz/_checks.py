"""Argument checks shared by every layer of the package: samples and labels, and did-you-mean
suggestions. A leaf module: it imports nothing of pdbviz."""

from __future__ import annotations

import numpy as np
import torch


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


def did_you_mean(value, options) -> str:
    """`` Did you mean 'x'?`` for the closest option (by similarity, then by prefix or substring), or ''."""
    import difflib

    text = str(value).lower()
    close = difflib.get_close_matches(text, list(options), n=1)
    if not close:
        close = [o for o in options if o.startswith(text) or (len(text) >= 3 and text in o)][:1]
    return f" Did you mean {close[0]!r}?" if close else ""
