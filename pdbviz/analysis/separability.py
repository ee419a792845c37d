"""How separable the classes are in a feature matrix, and in each layer of a model.

Measures (higher = more separable):
    ``fisher``      multi-class Fisher criterion ``tr(S_B) / tr(S_W)``
    ``probe``       held-out accuracy of a logistic-regression probe (Alain & Bengio 2016)
    ``knn``         held-out accuracy of a 5-nearest-neighbour classifier
    ``silhouette``  mean silhouette coefficient (scikit-learn), Euclidean
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .._checks import check_xy, did_you_mean
from ..data import as_data, stratified_indices
from .features import LOGITS, collect_features

#: the separability measures of ``separability_profile``, one column each.
SEPARABILITY_MEASURES = ("fisher", "probe", "knn", "silhouette")
#: an older name of ``SEPARABILITY_MEASURES``.
METRICS = SEPARABILITY_MEASURES


def _features(X, y):
    """``(X, y)`` as float64 features and labels, checked (see ``check_xy``)."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    check_xy(X, y, "X", ndim=2, min_classes=2)
    return X, y, np.unique(y)


def fisher_score(X, y) -> float:
    """Multi-class Fisher criterion ``J = tr(S_B) / tr(S_W)`` from traces.

    ``tr(S_B) = sum_c n_c ||mu_c - mu||^2`` and ``tr(S_W) = sum_i ||x_i - mu_(y_i)||^2``;
    memory is O(n d): no d x d scatter matrix is formed.

    Example:
        >>> round(fisher_score([[0.0], [0.2], [1.0], [1.2]], [0, 0, 1, 1]), 6)
        25.0
    """
    X, y, classes = _features(X, y)
    mu = X.mean(axis=0)
    between = within = 0.0
    for c in classes:
        Xc = X[y == c]
        mc = Xc.mean(axis=0)
        between += len(Xc) * float(np.sum((mc - mu) ** 2))
        within += float(np.sum((Xc - mc) ** 2))
    if within == 0:
        return float("inf") if between > 0 else float("nan")
    return between / within


def _halves(X, y, seed):
    """Standardised training and held-out halves of ``(X, y)``, stratified and seeded."""
    train = np.zeros(len(y), dtype=bool)
    train[stratified_indices(y, len(y) // 2, seed)] = True
    return standardise(X[train], X[~train]) + (y[train], y[~train])


def standardise(train: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scale features to zero mean and unit variance with the statistics of ``train`` (constant
    features are centred only); apply the same transform to ``others``."""
    m, s = train.mean(0), train.std(0)
    s = np.where(s == 0, 1.0, s)
    return tuple((a - m) / s for a in (train, *others))


def linear_probe_accuracy(X, y, seed: int = 0, C: float = 1.0) -> float:
    """Held-out accuracy of a logistic regression trained on half of ``(X, y)`` (stratified).

    Features are standardised on the training half; the probe is L2-regularised
    (``C``).
    """
    from sklearn.linear_model import LogisticRegression

    X, y, _ = _features(X, y)
    Xtr, Xte, ytr, yte = _halves(X, y, seed)
    clf = LogisticRegression(C=C, max_iter=300, tol=1e-3)
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(Xtr, ytr)
    return float(clf.score(Xte, yte))


def knn_accuracy(X, y, k: int = 5, seed: int = 0) -> float:
    """Held-out accuracy of a ``k``-nearest-neighbour classifier (half / half, stratified)."""
    from sklearn.neighbors import KNeighborsClassifier

    X, y, _ = _features(X, y)
    Xtr, Xte, ytr, yte = _halves(X, y, seed)
    return float(KNeighborsClassifier(n_neighbors=min(k, len(ytr))).fit(Xtr, ytr).score(Xte, yte))


def silhouette(X, y, seed: int = 0, max_samples: int = 2000) -> float:
    """Mean silhouette coefficient of the classes (Euclidean), on at most ``max_samples`` samples."""
    from sklearn.metrics import silhouette_score

    X, y, _ = _features(X, y)
    if len(np.unique(y)) >= len(y):
        raise ValueError("silhouette needs fewer classes than samples")
    size = min(max_samples, len(y))
    return float(silhouette_score(X, y, sample_size=size if size < len(y) else None, random_state=seed))


_FUNCS = {
    "fisher": lambda X, y, seed: fisher_score(X, y),
    "probe": lambda X, y, seed: linear_probe_accuracy(X, y, seed),
    "knn": lambda X, y, seed: knn_accuracy(X, y, seed=seed),
    "silhouette": lambda X, y, seed: silhouette(X, y, seed),
}


def check_metrics(metrics) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(metrics)
    for m in metrics:
        if m not in SEPARABILITY_MEASURES:
            raise ValueError(f"unknown measure {m!r}; available: {', '.join(SEPARABILITY_MEASURES)}."
                             f"{did_you_mean(m, SEPARABILITY_MEASURES)}")
    if not metrics:
        raise ValueError(f"metrics is empty; choose from {SEPARABILITY_MEASURES}")
    return metrics


def sample_split(data, n_samples: int | None, seed: int, split: str = "test"):
    """A stratified, seeded sample ``(X, y)`` of a split of ``data`` (any form ``as_data`` accepts).

    The test split when there is one, else the training split; at most
    ``n_samples`` samples, in memory.
    """
    if n_samples is not None and (isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 2):
        raise ValueError(f"n_samples must be an integer >= 2 or None, got {n_samples!r}")
    return as_data(data).measure_split(split).sample(n_samples, seed)


def separability_profile(model: nn.Module, data, metrics: Sequence[str] | str = ("fisher", "probe", "knn", "silhouette"),
                         n_samples: int | None = 1000, seed: int = 0, layers: Sequence[str] | None = None,
                         pool: str = "auto", split: str = "test", output=None, device=None) -> pd.DataFrame:
    """Separability of what each quantizable layer receives, and of the logits, by depth.

    ``data`` is any form ``as_data`` accepts; ``n_samples`` of its test split
    (else its training split) are measured, stratified and seeded. Layers are
    those whose input a hook can see (see ``collect_features``, which also
    says what each ``pool`` costs); ``output`` selects the logits of a model
    whose output is not a plain tensor; ``device`` is where to run (the model
    is moved there).

    Returns a tidy DataFrame with columns ``layer``, ``depth`` (0 = the network
    input, which the first layer receives), ``dims`` and one column per measure.
    Works the same on float and quantized models, so profiles can be compared.

    Example:
        >>> from pdbviz import load_dataset, build_model
        >>> d = load_dataset("digits"); m = build_model("lenet", d.input_shape, 10)
        >>> separability_profile(m, d, metrics="fisher", n_samples=200).columns.tolist()
        ['layer', 'depth', 'dims', 'fisher']
    """
    metrics = check_metrics(metrics)
    X, y = sample_split(data, n_samples, seed, split)
    feats = collect_features(model, X, layers=layers, pool=pool, seed=seed, output=output, device=device)
    labels = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    _features(np.zeros((len(labels), 1)), labels)
    rows = []
    for depth, (name, F) in enumerate(feats.items()):
        row = {"layer": name, "depth": depth, "dims": F.shape[1]}
        for m in metrics:
            row[m] = _FUNCS[m](F, labels, seed)
        rows.append(row)
    return pd.DataFrame(rows, columns=["layer", "depth", "dims", *metrics])


__all__ = ["METRICS", "SEPARABILITY_MEASURES", "LOGITS", "fisher_score", "knn_accuracy", "linear_probe_accuracy",
           "separability_profile", "silhouette"]
