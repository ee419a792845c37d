"""Linear centred kernel alignment (CKA) between two representations of the same samples.

Kornblith, Norouzi, Lee & Hinton, *Similarity of neural network representations
revisited*, ICML 2019. For feature matrices ``X (n x p)`` and ``Y (n x q)`` of
the same ``n`` samples, centred column by column::

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)

It lies in [0, 1], is 1 for identical representations, and is invariant to
orthogonal transforms and to isotropic scaling of either side (not to arbitrary
invertible linear maps). The same value comes from the ``n x n`` Gram matrices,
``<K, L>_F / (||K||_F ||L||_F)`` with ``K = X X^T`` and ``L = Y Y^T``;
``linear_cka`` takes whichever side is smaller.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .features import collect_features


def _matrix(a, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).detach()
    if t.dim() == 1:
        t = t[:, None]
    if t.dim() != 2:
        raise ValueError(f"{name} must be a 2-D feature matrix (n_samples, n_features), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.double()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t.to(torch.float64)


def linear_cka(X, Y) -> float:
    """Linear CKA of two feature matrices of the same samples (see the module docstring).

    Args:
        X: ``(n, p)`` array or tensor.
        Y: ``(n, q)`` array or tensor, the same ``n`` samples in the same order.

    Returns a value in [0, 1]; NaN when either side is constant (no variance).

    Example:
        >>> X = np.random.default_rng(0).normal(size=(50, 4))
        >>> round(linear_cka(X, 3 * X), 12)
        1.0
    """
    X, Y = _matrix(X, "X"), _matrix(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X and Y must hold the same samples: X has {X.shape[0]} rows, Y has {Y.shape[0]}")
    if X.shape[0] < 2:
        raise ValueError(f"linear CKA needs at least 2 samples, got {X.shape[0]}")
    X, Y = X - X.mean(0), Y - Y.mean(0)
    n, p, q = X.shape[0], X.shape[1], Y.shape[1]
    if n * (p * q + p * p + q * q) <= n * n * (p + q):  # whichever products are cheaper
        cross = float((Y.T @ X).pow(2).sum())
        xx, yy = float((X.T @ X).norm()), float((Y.T @ Y).norm())
    else:
        K, L = X @ X.T, Y @ Y.T
        cross, xx, yy = float((K * L).sum()), float(K.norm()), float(L.norm())
    if xx == 0 or yy == 0:
        return float("nan")
    return min(1.0, cross / (xx * yy))


def cka_profile(model: nn.Module, other: nn.Module, data, n_samples: int | None = 512, seed: int = 0,
                layers: Sequence[str] | None = None, max_dim: int = 1024, split: str = "test", output=None,
                device=None) -> pd.DataFrame:
    """Linear CKA between what each layer of two models receives, on the same samples.

    Typically ``model`` is a float network and ``other`` its quantized version
    (``pdbviz.quantize(model, schedule)``): the profile says at which depth the
    quantized network's representation parts from the float one. Features are
    collected by ``collect_features`` (the same pooling and ``max_dim`` for
    both models, the same seeded sketches), including the logits.

    Returns a DataFrame with columns ``layer``, ``depth`` and ``cka``.

    Example:
        >>> from pdbviz import build_model, load_dataset, quantize
        >>> d = load_dataset("digits"); m = build_model("mlp", d.input_shape, 10)
        >>> prof = cka_profile(m, quantize(m, "2"), d, n_samples=100)
        >>> prof.layer.tolist()[-1], bool(prof.cka.between(0, 1).all())
        ('logits', True)
    """
    from .separability import sample_split

    X, _ = sample_split(data, n_samples, seed, split)
    kw = dict(layers=layers, max_dim=max_dim, seed=seed, output=output, device=device)
    a = collect_features(model, X, **kw)
    b = collect_features(other, X, **kw)
    missing = [n for n in a if n not in b]
    if missing:
        raise ValueError(f"the models differ: {type(other).__name__} has no observable layers {missing}")
    rows = [{"layer": n, "depth": i, "cka": linear_cka(a[n], b[n])} for i, n in enumerate(a)]
    return pd.DataFrame(rows, columns=["layer", "depth", "cka"])
