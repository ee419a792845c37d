"""``as_data``: the one conversion behind every entry point that takes data.

Accepted forms (the same everywhere: ``fit``, ``evaluate``, ``finetune``,
``compare``, ``calibrate``, ``collect_features``, ``separability_profile``,
``embed_layers``, ``layer_sensitivity``, the widgets and ``explore``):

- a ``Data``, or the name of a dataset (``load_dataset``);
- tensors or numpy arrays ``(X, y)`` or ``(X_train, y_train, X_test, y_test)``;
- a pandas DataFrame with a label column (``label=``; by default the one
  column named ``label``, ``target``, ``y`` or ``class``), or a ``(train,
  test)`` pair of frames; the other columns must be numeric;
- a map-style torch ``Dataset`` whose items are ``(input, label)``
  (torchvision's included), or a ``(train, test)`` pair of them;
- a ``DataLoader`` (or a ``(train, test)`` pair), used with its own batching.

Classes are inferred when not given (from the labels, a ``classes``
attribute, or string labels, which become classes in sorted order) and
checked when given. Labels must be integers in ``0 .. classes - 1``.
"""

from __future__ import annotations

import numpy as np
import torch

from .core import Data, Split, input_tensor, label_tensor

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
    from .named import stratified_indices

    n_test = max(1, int(round(test_size * len(y))))
    test = np.zeros(len(y), dtype=bool)
    test[stratified_indices(y, n_test, seed, "test_size")] = True
    t = torch.from_numpy(test)
    return X[~t], y[~t], X[t], y[t]


def as_data(data, classes=None, name: str | None = None, label: str | None = None, test_size: float | None = None,
            seed: int = 0) -> Data:
    """Convert any accepted form of data (see the module docstring) to a ``Data``.

    Args:
        data: the data.
        classes: class names, or their number; inferred when not given, checked when given.
        name: a name for tables and reports.
        label: the label column of a DataFrame.
        test_size: for ``(X, y)`` arrays or one DataFrame: hold out this fraction
            (stratified, seeded) as the test split.
        seed: seed of that split.

    Example:
        >>> d = as_data((np.random.rand(30, 4), np.arange(30) % 3))
        >>> d.input_shape, d.classes, d.test is None
        ((4,), ('0', '1', '2'), True)
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
        from .named import load_dataset

        return as_data(load_dataset(data), classes=classes)
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
