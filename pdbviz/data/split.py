"""``Split``: one split of a dataset, in memory or streamed from a torch Dataset or DataLoader.

Every part of pdbviz reads data through the two methods of a split:
``batches`` (for training, evaluation, calibration and per-layer measures:
one batch on the device at a time, never the whole dataset) and ``sample``
(a small seeded sample in memory, for the per-layer measures and UMAP).

A split holds one of:

- tensors ``X`` and ``y`` in memory (sliced into batches; fast for small data);
- a map-style ``torch.utils.data.Dataset`` whose items are ``(input, label)``
  (streamed through a ``DataLoader`` with workers, pinned memory on CUDA);
- a ``DataLoader`` (or any re-iterable of ``(input, label)`` batches), used as
  given: its own batch size, order and workers.

Inputs are converted batch by batch: float64/float16/bfloat16 and bool to
float32, ``uint8`` images to float32 in [0, 1] (as ``ToTensor`` does), other
integers to int64 (token indices), PIL images and numpy arrays to tensors;
anything else is refused with a message that names the dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .._checks import check_xy, warn_renamed


def input_tensor(x, what: str = "inputs") -> torch.Tensor:
    """``x`` (a tensor, numpy array or PIL image, or a batch of them) as a tensor of a dtype models take.

    Example:
        >>> input_tensor(np.zeros((2, 3), dtype=np.uint8)).dtype
        torch.float32
    """
    if not isinstance(x, torch.Tensor):
        x = _to_tensor(x, what)
    if x.dtype == torch.uint8:
        return x.float().div_(255)
    if x.is_floating_point():
        return x if x.dtype == torch.float32 else x.float()
    if x.dtype == torch.bool:
        return x.float()
    if x.is_complex() or x.dtype in (torch.quint8, torch.qint8, torch.qint32):
        raise TypeError(f"{what} have dtype {x.dtype}, which models cannot take; convert them to float32")
    return x.long()


def label_tensor(y, what: str = "labels") -> torch.Tensor:
    """``y`` as int64 class labels; refuses fractional, complex, boolean and non-numeric labels."""
    if not isinstance(y, torch.Tensor):
        if isinstance(y, (int, np.integer)):
            return torch.tensor(int(y))
        y = _to_tensor(y, what)
    if y.is_floating_point():
        if not bool((y == y.round()).all()) or not bool(torch.isfinite(y).all()):
            raise ValueError(f"{what} must be integer class labels, got non-integer values of dtype {y.dtype}")
        return y.long()
    if y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{what} must be integer class labels, got dtype {y.dtype}")
    return y.long()


def _to_tensor(x, what: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "biuf":
            raise TypeError(f"{what} have numpy dtype {x.dtype}, which is not numeric; convert them first")
        return torch.from_numpy(np.ascontiguousarray(x))
    if type(x).__module__.startswith("PIL."):
        from torchvision.transforms.functional import pil_to_tensor

        return pil_to_tensor(x)
    if isinstance(x, (list, tuple)) and x and all(isinstance(v, torch.Tensor) for v in x):
        return torch.stack(list(x))
    try:
        return torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be tensors, numpy arrays or PIL images, got {type(x).__name__}") from None


def collate(items: Sequence) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``(input, label)`` items (tensors, arrays, PIL images, numbers) into two tensors."""
    first = items[0]
    if not isinstance(first, (tuple, list)) or len(first) < 2:
        raise TypeError(f"dataset items must be (input, label) pairs, got a {type(first).__name__}"
                        + (f" of length {len(first)}" if isinstance(first, (tuple, list)) else ""))
    xs = [input_tensor(it[0], "dataset inputs") for it in items]
    return torch.stack(xs), label_tensor(torch.as_tensor([int(it[1]) for it in items]), "dataset labels")


def _batch(batch, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, dict):
        keys = [k for k in ("input", "inputs", "x", "image", "pixel_values") if k in batch]
        lab = [k for k in ("label", "labels", "y", "target", "targets") if k in batch]
        if not keys or not lab:
            raise TypeError(f"{what} yields dicts with keys {sorted(batch)}; pdbviz needs an input and a label key")
        return input_tensor(batch[keys[0]], what), label_tensor(batch[lab[0]], what)
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"{what} must yield (input, label) batches, got {type(batch).__name__}")
    return input_tensor(batch[0], what), label_tensor(batch[1], what)


class Split:
    """One split of a dataset; see the module docstring for what it can hold.

    Attributes:
        form: ``"tensors"``, ``"dataset"`` or ``"loader"``.
        X, y: the tensors (form ``"tensors"`` only).
        source: the Dataset or DataLoader (the other forms).
    """

    @property
    def kind(self) -> str:
        """Deprecated name of ``form``."""
        warn_renamed("Split.kind", "Split.form", "how the split is held")
        return self.form

    def __init__(self, X=None, y=None, source=None, what: str = "data"):
        self.what = what
        if source is None:
            X, y = input_tensor(X, f"{what} inputs"), label_tensor(y, f"{what} labels")
            check_xy(X, y, what)
            self.form, self.X, self.y, self.source = "tensors", X, y, None
        else:
            from torch.utils.data import DataLoader, IterableDataset

            if isinstance(source, IterableDataset):
                raise TypeError(f"{what}: an IterableDataset has no length or indexing; wrap it in a DataLoader")
            self.form = "loader" if isinstance(source, DataLoader) or not hasattr(source, "__getitem__") \
                else "dataset"
            self.X = self.y = None
            self.source = source
            try:
                n = len(source)
            except TypeError:
                raise TypeError(f"{what}: a {type(source).__name__} without a length cannot be used") from None
            if n == 0:
                raise ValueError(f"{what} is empty")

    def __len__(self) -> int:
        """Number of samples (for a DataLoader: its dataset's length when it has one, else batches x size)."""
        if self.form == "tensors":
            return len(self.y)
        if self.form == "dataset":
            return len(self.source)
        dataset = getattr(self.source, "dataset", None)
        try:
            return len(dataset)
        except TypeError:
            return len(self.source) * (getattr(self.source, "batch_size", None) or 1)

    @property
    def in_memory(self) -> bool:
        """True when the split holds tensors in memory."""
        return self.form == "tensors"

    def n_batches(self, batch_size: int) -> int:
        """Batches per pass at ``batch_size`` (a DataLoader keeps its own)."""
        if self.form == "loader":
            return len(self.source)
        return math.ceil(len(self) / batch_size)

    def first(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first two samples, for shape and dtype checks."""
        if self.form == "tensors":
            return self.X[:2], self.y[:2]
        if self.form == "dataset":
            return collate([self.source[i] for i in range(min(2, len(self.source)))])
        return _batch(next(iter(self.source)), self.what)

    def labels(self) -> torch.Tensor | None:
        """All labels, when they are available without reading the inputs (else None)."""
        if self.form == "tensors":
            return self.y
        source = self.source if self.form == "dataset" else getattr(self.source, "dataset", None)
        for attr in ("targets", "labels", "tensors"):
            values = getattr(source, attr, None)
            if attr == "tensors" and isinstance(values, tuple) and len(values) >= 2:
                values = values[1]
            if values is not None and not callable(values):
                try:
                    y = label_tensor(values if isinstance(values, torch.Tensor) else torch.as_tensor(values))
                except (TypeError, ValueError):
                    return None
                if y.dim() == 1 and len(y) == len(source):
                    return y
        return None

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, device=None, num_workers: int = 0,
                generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """``(inputs, labels)`` batches on ``device``; one batch in memory at a time.

        ``shuffle`` orders samples by ``generator`` (or a generator seeded with
        ``seed``). A DataLoader split ignores ``batch_size``, ``shuffle`` and
        ``num_workers``: it keeps its own.
        """
        device = torch.device(device) if device is not None else torch.device("cpu")
        pin = device.type == "cuda"
        if self.form == "loader":
            for batch in self.source:
                x, y = _batch(batch, self.what)
                yield x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)
            return
        gen = generator if generator is not None else torch.Generator().manual_seed(seed)
        if self.form == "tensors":
            n = len(self.y)
            order = torch.randperm(n, generator=gen) if shuffle else None
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size] if order is not None else slice(i, i + batch_size)
                x, y = self.X[idx], self.y[idx]
                if pin:
                    x, y = x.pin_memory(), y.pin_memory()
                yield x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)
            return
        from torch.utils.data import DataLoader

        # the order comes from ``gen`` exactly as for tensors; the loader's own generator only seeds its workers
        order = torch.randperm(len(self.source), generator=gen).tolist() if shuffle else None
        loader = DataLoader(self.source, batch_size=batch_size, sampler=order, num_workers=num_workers,
                            pin_memory=pin, collate_fn=collate, generator=torch.Generator().manual_seed(seed))
        for x, y in loader:
            yield x.to(device, non_blocking=pin), y.to(device, non_blocking=pin)

    def sample(self, n: int | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """At most ``n`` samples in memory (all for ``None``): stratified by class when the labels are known
        without reading the inputs, else a seeded random subset (a DataLoader: its first batches)."""
        if self.form == "tensors":
            keep = stratified_indices(self.y, n, seed, "n_samples")
            return (self.X, self.y) if keep is None else (self.X[keep], self.y[keep])
        if self.form == "dataset":
            total = len(self.source)
            labels = self.labels()
            if labels is not None:
                keep = stratified_indices(labels, n, seed, "n_samples")
                keep = np.arange(total) if keep is None else keep
            elif n is None or n >= total:
                keep = np.arange(total)
            else:
                keep = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
            xs, ys = [], []
            for i in range(0, len(keep), 256):
                x, y = collate([self.source[int(j)] for j in keep[i:i + 256]])
                xs.append(x)
                ys.append(y)
            return torch.cat(xs), torch.cat(ys)
        xs, ys, have = [], [], 0
        for x, y in self.batches(1):
            xs.append(x)
            ys.append(y)
            have += len(y)
            if n is not None and have >= n:
                break
        X, y = torch.cat(xs), torch.cat(ys)
        return (X[:n], y[:n]) if n is not None else (X, y)


def stratified_indices(y, n: int | None, seed: int, name: str = "n") -> np.ndarray | None:
    """Sorted indices of a seeded sample of ``n`` labels ``y``, stratified by class when every class can be.

    Returns None when ``n`` is None or covers all of ``y`` (keep everything).
    The one sampler behind ``Data.subset``, the per-layer measures and the
    held-out halves of the probes.

    Example:
        >>> stratified_indices(np.repeat([0, 1], 50), 10, seed=0).tolist()
        [2, 10, 11, 28, 41, 52, 63, 66, 73, 80]
    """
    if n is None:
        return None
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {n!r}")
    labels = y.numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if n >= len(labels):
        return None
    from sklearn.model_selection import train_test_split

    counts = np.unique(labels, return_counts=True)[1]
    strat = labels if n >= len(counts) and len(labels) - n >= len(counts) and counts.min() >= 2 else None
    keep, _ = train_test_split(np.arange(len(labels)), train_size=int(n), random_state=seed, stratify=strat)
    return np.sort(keep)
