"""UMAP views of each layer's input, aligned across layers, cached, with a warm-up.

umap-learn compiles its numba kernels on first use in every process (seconds);
``warm_up_umap()`` pays that cost in a background thread before it is needed.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .features import collect_features
from .separability import sample_split, standardise

_WARM = threading.Event()
_WARM_LOCK = threading.Lock()


def _umap_class():
    try:
        from umap import UMAP
    except ImportError as err:  # pragma: no cover - umap-learn is a dependency
        raise ImportError("embed_layers needs umap-learn: pip install umap-learn") from err
    return UMAP


def warm_up_umap(background: bool = True) -> threading.Thread | None:
    """Compile umap-learn's numba kernels now, in a daemon thread by default.

    Returns the thread (``join()`` it to wait), or None when run in the
    foreground or when this process is already warm.
    """
    if _WARM.is_set():
        return None

    def run():
        with _WARM_LOCK:
            if _WARM.is_set():
                return
            rng = np.random.default_rng(0)
            _umap_class()(n_neighbors=5, n_epochs=10, random_state=0, n_jobs=1).fit_transform(rng.normal(size=(60, 4)))
            _WARM.set()

    if not background:
        run()
        return None
    thread = threading.Thread(target=run, name="pdbviz-umap-warm-up", daemon=True)
    thread.start()
    return thread


def is_umap_warm() -> bool:
    """True once umap-learn's kernels are compiled in this process."""
    return _WARM.is_set()


class EmbeddingCache:
    """An in-memory LRU cache of 2-D embeddings, keyed by content.

    The key covers the layer's input features themselves (so the model's
    weights, the layer and the samples) and the UMAP parameters: the same
    request is never computed twice, and any change is.
    """

    def __init__(self, max_items: int = 64):
        self.max_items = max_items
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    @staticmethod
    def key(features: np.ndarray, params: dict) -> str:
        """Cache key of an embedding: a hash of the features, their shape and the UMAP parameters."""
        h = hashlib.blake2b(digest_size=20)
        h.update(np.ascontiguousarray(features, dtype=np.float32).tobytes())
        h.update(repr(features.shape).encode())
        h.update(repr(sorted(params.items())).encode())
        return h.hexdigest()

    def get(self, key: str) -> np.ndarray | None:
        """A copy of the cached embedding, or None."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key].copy()
            self.misses += 1
            return None

    def put(self, key: str, value: np.ndarray) -> None:
        """Store a copy of an embedding, dropping the least recently used beyond ``max_items``."""
        with self._lock:
            self._items[key] = value.copy()
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget every cached embedding."""
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


#: The cache ``embed_layers`` uses unless given another (or ``cache=None``).
default_cache = EmbeddingCache()


def procrustes_align(Y: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Rotate/reflect ``Y`` (centred, unit scale) onto ``reference`` (orthogonal Procrustes).

    Both are ``(n, 2)`` embeddings of the same samples in the same order.
    """
    from scipy.linalg import orthogonal_procrustes

    def norm(A):
        A = A - A.mean(0)
        s = np.sqrt((A**2).sum() / len(A))
        return A / (s if s > 0 else 1)

    Yn, Rn = norm(Y), norm(reference)
    R, _ = orthogonal_procrustes(Yn, Rn)
    return Yn @ R


def embed_features(F: np.ndarray, n_neighbors: int = 15, min_dist: float = 0.1, n_epochs: int = 200,
                   seed: int = 0, cache: EmbeddingCache | None = default_cache) -> np.ndarray:
    """2-D UMAP of one feature matrix, standardised first; cached by content."""
    F = np.asarray(F, dtype=np.float32)
    if F.ndim != 2 or len(F) < 3:
        raise ValueError(f"features must be a 2-D array with at least 3 rows, got shape {F.shape}")
    params = {"n_neighbors": n_neighbors, "min_dist": min_dist, "n_epochs": n_epochs, "seed": seed}
    key = EmbeddingCache.key(F, params) if cache is not None else None
    if cache is not None and (hit := cache.get(key)) is not None:
        return hit
    Z = _umap_class()(n_neighbors=min(n_neighbors, len(F) - 1), min_dist=min_dist, n_epochs=n_epochs,
                      random_state=seed, n_jobs=1, init="spectral" if len(F) > n_neighbors + 1 else "random"
                      ).fit_transform(standardise(F)[0])
    Z = np.asarray(Z, dtype=np.float64)
    _WARM.set()
    if cache is not None:
        cache.put(key, Z)
    return Z


def embed_layers(model: nn.Module, data, layers: Sequence[str] | None = None, n_samples: int | None = 1000,
                 seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1, n_epochs: int = 200,
                 align: bool = True, include_logits: bool = True, split: str = "test",
                 cache: EmbeddingCache | None = default_cache, progress=None, output=None,
                 device=None) -> pd.DataFrame:
    """UMAP 2-D coordinates of each layer's input, aligned from layer to layer.

    Each layer is embedded on its own (standardised features, seeded UMAP),
    then rotated/reflected onto the previous layer's embedding by orthogonal
    Procrustes (``align=True``), so consecutive views do not flip or spin.

    Returns a tidy DataFrame: ``layer``, ``depth``, ``sample`` (row in the
    sample), ``label``, ``x``, ``y``. ``progress(done, total, layer)`` is
    called after each layer, for UIs.
    """
    X, y = sample_split(data, n_samples, seed, split)
    feats = collect_features(model, X, layers=layers, seed=seed, include_logits=include_logits, output=output,
                             device=device)
    labels = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    frames, previous = [], None
    for depth, (name, F) in enumerate(feats.items()):
        Z = embed_features(F, n_neighbors, min_dist, n_epochs, seed, cache)
        if align:
            Z = procrustes_align(Z, previous) if previous is not None else procrustes_align(Z, Z)
            previous = Z
        frames.append(pd.DataFrame({"layer": name, "depth": depth, "sample": np.arange(len(Z)), "label": labels,
                                    "x": Z[:, 0], "y": Z[:, 1]}))
        if progress is not None:
            progress(depth + 1, len(feats), name)
    return pd.concat(frames, ignore_index=True)
