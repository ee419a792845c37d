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

from .core import FORMS, Data, from_form
from .named import load_dataset


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
        >>> import numpy as np
        >>> d = as_data((np.random.rand(30, 4), np.arange(30) % 3))
        >>> d.input_shape, d.classes, d.test is None
        ((4,), ('0', '1', '2'), True)
    """
    if isinstance(data, str):
        return as_data(load_dataset(data), classes=classes)
    return from_form(data, classes=classes, name=name, label=label, test_size=test_size, seed=seed)


__all__ = ["FORMS", "as_data"]
