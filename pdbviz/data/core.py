"""``Data``: a train and a test split (``Split``), and its construction from every form of data but a name.

``from_form`` converts tensors and arrays, DataFrames, Datasets and
DataLoaders (the forms ``as_data`` lists, less a dataset's name, which
``pdbviz.data.convert.as_data`` reads through ``load_dataset``).
"""

from __future__ import annotations

import numpy as np
import torch

from .split import Split, input_tensor, label_tensor, stratified_indices

LABEL_COLUMNS = ("label", "target", "y", "class")
FORMS = ("a pdbviz Data, a dataset name, (X, y) or (X_train, y_train, X_test, y_test) tensors or numpy arrays, "
         "a pandas DataFrame with a label column, a torch Dataset or DataLoader, or a (train, test) pair of those")


def _is_source(obj) -> bool:
    from torch.utils.data import DataLoader, Dataset

    return isinstance(obj, (Dataset, DataLoader))


def _is_frame(obj) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns")


def _is_array(obj) -> bool:
    return isinstance(obj, (torch.Tensor, np.ndarray)) or (isinstance(obj, (list, tuple)) and not _is_source(obj)
                                                            and len(obj) > 0 and not _is_frame(obj[0]))


def _frame_xy(df, label, what: str):
    if label is None:
        found = [c for c in LABEL_COLUMNS if c in df.columns]
        if len(found) != 1:
            raise ValueError(f"label: say which column of the DataFrame holds the labels (as_data(df, label=...)); "
                             f"its columns are {list(df.columns)}")
        label = found[0]
    if label not in df.columns:
        raise ValueError(f"label {label!r} is not a column of the {what} DataFrame; its columns are {list(df.columns)}")
    features = df.drop(columns=[label])
    bad = [f"{c} ({features[c].dtype})" for c in features.columns if features[c].dtype.kind not in "biuf"]
    if bad:
        raise TypeError(f"the {what} DataFrame has non-numeric feature columns: {', '.join(bad)}; encode them first")
    return features.to_numpy(dtype=np.float32), df[label].to_numpy(), label


def _codes(ys: list, classes):
    """Labels as int64 (string labels become codes of the sorted classes) and the class names."""
    arrays = [np.asarray(y.cpu().numpy() if isinstance(y, torch.Tensor) else y) for y in ys]
    if any(a.dtype.kind in "OUS" for a in arrays):
        names = sorted({str(v) for a in arrays for v in a.tolist()}) if classes is None else [str(c) for c in classes]
        index = {n: i for i, n in enumerate(names)}
        unknown = sorted({str(v) for a in arrays for v in a.tolist()} - set(index))
        if unknown:
            raise ValueError(f"labels {unknown[:5]} are not among classes {names}")
        return [torch.as_tensor([index[str(v)] for v in a.tolist()], dtype=torch.int64) for a in arrays], names
    return [label_tensor(torch.from_numpy(np.array(a)), "labels") for a in arrays], classes


def _class_names(classes, labels: list[torch.Tensor | None], source_classes=None):
    """Class names from ``classes`` (names or a count), a dataset's own names, or the labels; then check."""
    if isinstance(classes, (int, np.integer)) and not isinstance(classes, bool):
        if classes < 2:
            raise ValueError(f"classes must be at least 2 class names or a count >= 2, got {classes}")
        names = [str(i) for i in range(int(classes))]
    elif classes is not None:
        names = [str(c) for c in classes]
        if len(names) < 2:
            raise ValueError(f"classes must name at least 2 classes, got {names}")
    elif source_classes is not None:
        names = [str(c) for c in source_classes]
    else:
        known = [y for y in labels if y is not None and len(y)]
        names = [str(i) for i in range(int(max(int(y.max()) for y in known)) + 1)] if known else None
    for y in labels:
        if y is None or not len(y):
            continue
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or (names is not None and hi >= len(names)):
            allowed = f"0..{len(names) - 1}" if names is not None else "non-negative"
            given = f" for the {len(names)} classes given" if classes is not None else ""
            raise ValueError(f"labels range over {lo}..{hi}, but they must be in {allowed}{given}")
    return names


def _split_test(X, y, test_size, seed):
    if test_size is None:
        return X, y, None, None
    if not (isinstance(test_size, float) and 0 < test_size < 1):
        raise ValueError(f"test_size must be a float between 0 and 1, or None, got {test_size!r}")
    n_test = max(1, int(round(test_size * len(y))))
    test = np.zeros(len(y), dtype=bool)
    test[stratified_indices(y, n_test, seed, "test_size")] = True
    t = torch.from_numpy(test)
    return X[~t], y[~t], X[t], y[t]


def from_form(data, classes=None, name: str | None = None, label: str | None = None, test_size: float | None = None,
              seed: int = 0) -> "Data":
    """Convert data in any accepted form but a dataset name (see ``pdbviz.data.convert``) to a ``Data``.

    Example:
        >>> from_form((np.random.rand(30, 4), np.arange(30) % 3)).classes
        ('0', '1', '2')
    """
    if isinstance(data, Data):
        if classes is None:
            return data
        names = _class_names(classes, [s.labels() for s in (data.train, data.test) if s is not None])
        if data.classes is not None and list(data.classes) != names:
            raise ValueError(f"classes {names} do not match the data's own {list(data.classes)}")
        return Data(data.name, classes=names, mean=data.mean, std=data.std, augment=data.augment, info=data.info,
                    train=data.train, test=data.test)
    if isinstance(data, str):
        raise TypeError(f"data: a dataset name ({data!r}) is read by as_data or load_dataset; here give {FORMS}")
    if _is_frame(data):
        X, y, col = _frame_xy(data, label, "training")
        return _from_arrays([X, y], classes, name or "dataframe", test_size, seed, {"source": "DataFrame",
                                                                                     "label": col})
    if _is_source(data):
        return _from_sources([data], classes, name)
    if isinstance(data, (tuple, list)):
        items = list(data)
        if len(items) == 2 and all(_is_source(i) for i in items):
            return _from_sources(items, classes, name)
        if len(items) == 2 and all(_is_frame(i) for i in items):
            Xtr, ytr, col = _frame_xy(items[0], label, "training")
            Xte, yte, _ = _frame_xy(items[1], col, "test")
            return _from_arrays([Xtr, ytr, Xte, yte], classes, name or "dataframe", None, seed,
                                {"source": "DataFrame", "label": col})
        if len(items) in (2, 4) and all(i is not None for i in items):
            if not all(_is_array(i) for i in items):
                kinds = ", ".join(type(i).__name__ for i in items)
                raise TypeError(f"data: a tuple must hold tensors or arrays (X, y[, X_test, y_test]) or two "
                                f"Datasets/DataLoaders (train, test), got ({kinds})")
            return _from_arrays(items, classes, name or "arrays", test_size, seed, {"source": "arrays"})
        if len(items) == 4 and items[0] is None:
            raise ValueError("data has no training split: (None, None, X_test, y_test) only evaluates; pass it to "
                             "evaluate(..., split='test') as (X_test, y_test)")
        raise ValueError(f"data: a tuple must have 2 or 4 items, got {len(items)}; accepted: {FORMS}")
    raise TypeError(f"data must be {FORMS}; got {type(data).__name__}")


def _from_arrays(items: list, classes, name: str, test_size, seed: int, info: dict) -> Data:
    xs = items[0::2]
    for i, x in enumerate(xs):
        shape = tuple(getattr(x, "shape", np.shape(x)))
        if len(shape) < 2:
            which = "X" if i == 0 else "X_test"
            raise ValueError(f"{which} must have one row per sample, shape (n, features...) or (n, C, H, W); got "
                             f"shape {shape}")
    ys, names = _codes(items[1::2], classes)
    names = _class_names(names if names is not None else classes, ys)
    Xtr, ytr = input_tensor(xs[0], "the training inputs"), ys[0]
    if len(items) == 2:
        Xtr, ytr, Xte, yte = _split_test(Xtr, ytr, test_size, seed)
    else:
        Xte, yte = xs[1], ys[1]
    train = Split(Xtr, ytr, what="the training split")
    test = Split(Xte, yte, what="the test split") if Xte is not None else None
    if test is not None and tuple(test.X.shape[1:]) != tuple(train.X.shape[1:]):
        raise ValueError(f"the test inputs have shape {tuple(test.X.shape[1:])} per sample, the training inputs "
                         f"{tuple(train.X.shape[1:])}")
    return Data(name, classes=names, info=info, train=train, test=test)


def _from_sources(items: list, classes, name: str | None) -> Data:
    splits = [Split(source=s, what=w) for s, w in zip(items, ("the training split", "the test split"))]
    for s in splits:  # items must be (input, label): fail now, with the reason, not inside a training loop
        s.first()
    source_classes = None
    for s in items:
        base = getattr(s, "dataset", s)
        if getattr(base, "classes", None) is not None and not callable(base.classes):
            source_classes = base.classes
            break
    names = _class_names(classes, [s.labels() for s in splits], source_classes)
    base = getattr(items[0], "dataset", items[0])
    return Data(name or type(base).__name__, classes=names, info={"source": type(items[0]).__name__},
                train=splits[0], test=splits[1] if len(splits) > 1 else None)


class Data:
    """Train and test splits of a dataset, with class names and how the inputs were normalised.

    Build one with ``pdbviz.as_data`` (from tensors, arrays, a DataFrame, a
    Dataset or a DataLoader), ``Data.from_numpy``, ``Data.from_dataset``, or
    ``load_dataset(name)``; or directly from tensors:
    ``Data(name, X_train, y_train, X_test, y_test, classes)``.

    Attributes:
        name: dataset name.
        train, test: the splits (``Split``); ``test`` may be None.
        classes: class names, ``classes[label]`` (None when not known: the
            model's number of outputs then bounds the labels).
        mean, std: the per-channel normalisation that was applied (if any).
        augment: augmentation ``fit`` applies by default (``"crop-flip"`` for CIFAR).
        info: where the data came from.

    ``X_train``, ``y_train``, ``X_test`` and ``y_test`` are the tensors of
    in-memory splits.
    """

    def __init__(self, name: str, X_train=None, y_train=None, X_test=None, y_test=None, classes=None,
                 mean: tuple = (), std: tuple = (), augment: str | None = None, info: dict | None = None, *,
                 train: Split | None = None, test: Split | None = None):
        self.name = str(name)
        self.train = train if train is not None else Split(X_train, y_train, what="the training split")
        if test is None and X_test is not None:
            test = Split(X_test, y_test, what="the test split")
        self.test = test
        self.classes = tuple(str(c) for c in classes) if classes is not None else None
        self.mean, self.std = tuple(mean), tuple(std)
        self.augment = augment
        self.info = dict(info or {})

    # -- in-memory views ----------------------------------------------------
    def _tensors(self, split: str, part: str):
        s = self.split(split, required=False)
        if s is None:
            return None
        if not s.in_memory:
            raise AttributeError(f"{self.name!r} streams its {split} split from a {type(s.source).__name__}: "
                                 f"there is no {part}_{split} tensor; use data.{split}.batches(...) or "
                                 f"data.{split}.sample(n)")
        return s.X if part == "X" else s.y

    @property
    def X_train(self) -> torch.Tensor:
        """Training inputs (in-memory splits)."""
        return self._tensors("train", "X")

    @property
    def y_train(self) -> torch.Tensor:
        """Training labels (in-memory splits)."""
        return self._tensors("train", "y")

    @property
    def X_test(self) -> torch.Tensor | None:
        """Test inputs (in-memory splits; None without a test split)."""
        return self._tensors("test", "X")

    @property
    def y_test(self) -> torch.Tensor | None:
        """Test labels (in-memory splits; None without a test split)."""
        return self._tensors("test", "y")

    def split(self, name: str, required: bool = True) -> Split | None:
        """The ``"train"`` or ``"test"`` split (``required``: a missing test split is an error)."""
        if name not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {name!r}")
        s = self.train if name == "train" else self.test
        if s is None and required:
            raise ValueError(f"{self.name!r} has no test split; give (X_train, y_train, X_test, y_test), a "
                             "(train, test) pair of Datasets or DataLoaders, or use split='train'")
        return s

    def measure_split(self, split: str = "test") -> Split:
        """The split the per-layer measures read: ``split``, or the training split when there is no test split."""
        return self.split(split, required=False) or self.train

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input sample."""
        return tuple(self.train.first()[0].shape[1:])

    @property
    def num_classes(self) -> int | None:
        """Number of classes (None when not known)."""
        return len(self.classes) if self.classes is not None else None

    def __repr__(self) -> str:
        def part(s):
            if s is None:
                return "none"
            return f"{tuple(s.X.shape)}" if s.in_memory else f"{len(s)} from a {type(s.source).__name__}"

        n = f"{self.num_classes} classes" if self.classes is not None else "classes unknown"
        return f"Data({self.name!r}: train {part(self.train)}, test {part(self.test)}, {n})"

    def subset(self, n_train: int | None = None, n_test: int | None = None, seed: int = 0) -> "Data":
        """A copy with at most ``n_train`` / ``n_test`` samples, stratified by class, in memory."""
        tr = self.train.sample(n_train, seed) if n_train is not None or not self.train.in_memory else \
            (self.train.X, self.train.y)
        te = None
        if self.test is not None:
            te = self.test.sample(n_test, seed) if n_test is not None or not self.test.in_memory else \
                (self.test.X, self.test.y)
        return Data(self.name, tr[0], tr[1], *(te or (None, None)), classes=self.classes, mean=self.mean,
                    std=self.std, augment=self.augment, info=dict(self.info))

    # -- constructors ---------------------------------------------------------
    @classmethod
    def from_numpy(cls, X, y, X_test=None, y_test=None, classes=None, name: str = "arrays",
                   test_size: float | None = None, seed: int = 0) -> "Data":
        """From arrays or tensors; ``test_size`` holds out a stratified test split when none is given.

        Example:
            >>> d = Data.from_numpy(np.random.rand(40, 5), np.arange(40) % 2, test_size=0.25)
            >>> d.input_shape, d.num_classes, len(d.test)
            ((5,), 2, 10)
        """
        data = (X, y) if X_test is None else (X, y, X_test, y_test)
        return from_form(data, classes=classes, name=name, test_size=test_size, seed=seed)

    @classmethod
    def from_dataset(cls, train, test=None, classes=None, name: str | None = None) -> "Data":
        """From map-style torch Datasets (torchvision's included) or DataLoaders, streamed in batches.

        Example::

            import torchvision
            train = torchvision.datasets.CIFAR10("data", train=True, download=True,
                                                 transform=torchvision.transforms.ToTensor())
            data = Data.from_dataset(train, classes=train.classes)
        """
        return from_form(train if test is None else (train, test), classes=classes, name=name)
