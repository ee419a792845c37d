"""Argument checks shared by every layer of the package: declared constraints (``validate``,
``validate_params``), samples and labels, and did-you-mean suggestions. A leaf module: it imports nothing of
pdbviz."""

from __future__ import annotations

import functools
import inspect
import math
import operator
import warnings
from dataclasses import dataclass

import numpy as np
import torch


def warn_renamed(old: str, new: str, why: str, stacklevel: int = 3) -> None:
    """A DeprecationWarning for a name that was renamed: ``"OLD is deprecated; use NEW (WHY)"``, pointing at the
    caller of the function or property that calls this one."""
    warnings.warn(f"{old} is deprecated; use {new} ({why})", DeprecationWarning, stacklevel=stacklevel)


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


# -- declared argument constraints ----------------------------------------------------------------------------------
# In the spirit of scikit-learn's ``_parameter_constraints``: a public function declares what each argument may be
# (``@validate_params({...})`` or ``validate(name, value, constraint)``), and every message says the same thing: the
# parameter, the value given and what is allowed ("epochs must be a positive integer, got 0").


class Constraint:
    """What an argument may be: ``accepts(value)``, ``convert(value)``, ``describe()`` (the words after "must be"),
    ``show(value)`` (how a bad value is named) and the ``error`` raised for one."""

    error: type[Exception] = ValueError

    def show(self, value) -> str:
        return repr(value)

    def accepts(self, value) -> bool:
        raise NotImplementedError

    def convert(self, value):
        return value

    def describe(self) -> str:
        raise NotImplementedError


def _is_integer(value) -> bool:
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


@dataclass(frozen=True)
class Integer(Constraint):
    """An integer (Python or NumPy, never a bool) in ``low..high`` (either bound may be None).

    ``words`` replaces the description where a message has its own ("an integer >= 1").

    Example:
        >>> validate("epochs", 3, Integer(1)), Integer(1).describe(), Integer(0).describe()
        (3, 'a positive integer', 'an integer >= 0')
    """

    low: int | None = None
    high: int | None = None
    words: str | None = None

    def accepts(self, value) -> bool:
        if not _is_integer(value):
            return False
        v = operator.index(value)
        return (self.low is None or v >= self.low) and (self.high is None or v <= self.high)

    def convert(self, value) -> int:
        return int(operator.index(value))

    def describe(self) -> str:
        if self.words is not None:
            return self.words
        if self.low is not None and self.high is not None:
            return f"an integer in {self.low}..{self.high}"
        if self.low == 1:
            return "a positive integer"
        if self.low is not None:
            return f"an integer >= {self.low}"
        return "an integer" if self.high is None else f"an integer <= {self.high}"


@dataclass(frozen=True)
class Real(Constraint):
    """A finite number (int or float, never a bool) between ``low`` and ``high`` (either may be None), each bound
    excluded when ``low_open`` / ``high_open``.

    Example:
        >>> Real(0, low_open=True).describe(), Real(0, 1, low_open=True, high_open=True).describe()
        ('a positive number', 'a number in (0, 1)')
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def accepts(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or (v < self.high if self.high_open else v <= self.high)

    def describe(self) -> str:
        if self.low == 0 and self.low_open and self.high is None:
            return "a positive number"
        if self.low is not None and self.high is not None:
            return (f"a number in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"a number {'>' if self.low_open else '>='} {self.low:g}"
        return "a finite number" if self.high is None else f"a number {'<' if self.high_open else '<='} {self.high:g}"


@dataclass(frozen=True)
class OneOf(Constraint):
    """One of ``options`` (compared with ``==``).

    Example:
        >>> validate("split", "val", OneOf(("train", "test")))
        Traceback (most recent call last):
        ...
        ValueError: split must be one of ('train', 'test'), got 'val'
    """

    options: tuple

    def accepts(self, value) -> bool:
        try:
            return value in self.options
        except TypeError:
            return False

    def describe(self) -> str:
        return f"one of {tuple(self.options)}"


@dataclass(frozen=True)
class Function(Constraint):
    """Anything callable; ``what`` says what it is called with."""

    what: str = "a function"

    def accepts(self, value) -> bool:
        return callable(value)

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class OrNone(Constraint):
    """None, or what ``inner`` allows; ``mention`` says "or None" in the message (off where None only means
    "not given", such as a default chosen later)."""

    inner: Constraint
    mention: bool = True

    def accepts(self, value) -> bool:
        return value is None or self.inner.accepts(value)

    def convert(self, value):
        return None if value is None else self.inner.convert(value)

    def describe(self) -> str:
        return f"{self.inner.describe()} or None" if self.mention else self.inner.describe()

    @property
    def error(self) -> type[Exception]:  # type: ignore[override]
        return self.inner.error

    def show(self, value) -> str:
        return self.inner.show(value)


@dataclass(frozen=True)
class InstanceOf(Constraint):
    """An instance of ``types`` (a class or a tuple of them), described as ``what``; a bad value is a TypeError
    naming its type.

    Example:
        >>> validate("model", 3, InstanceOf(str, "a model name"))
        Traceback (most recent call last):
        ...
        TypeError: model must be a model name, got int
    """

    types: type | tuple
    what: str
    error: type[Exception] = TypeError

    def accepts(self, value) -> bool:
        return isinstance(value, self.types)

    def describe(self) -> str:
        return self.what

    def show(self, value) -> str:
        return type(value).__name__


#: the constraints written most often
POSITIVE_INT = Integer(1)
NON_NEGATIVE_INT = Integer(0)
POSITIVE_REAL = Real(0, low_open=True)


def validate(name: str, value, constraint: Constraint):
    """``value`` (converted: a NumPy integer becomes an int) if ``constraint`` allows it, else the constraint's
    error (ValueError, or TypeError for a wrong type) naming ``name``, the value and what is allowed.

    Example:
        >>> validate("batch_size", 0, POSITIVE_INT)
        Traceback (most recent call last):
        ...
        ValueError: batch_size must be a positive integer, got 0
    """
    if constraint.accepts(value):
        return constraint.convert(value)
    raise constraint.error(f"{name} must be {constraint.describe()}, got {constraint.show(value)}")


def validate_params(constraints: dict[str, Constraint]):
    """Decorate a function so that its arguments named in ``constraints`` are checked (and converted) on every
    call, before its body runs; the signature and docstring stay the function's own.

    Example:
        >>> @validate_params({"n": POSITIVE_INT})
        ... def repeat(text: str, n: int = 1) -> str:
        ...     return text * n
        >>> repeat("ab", n=2)
        'abab'
        >>> repeat("ab", n=0)
        Traceback (most recent call last):
        ...
        ValueError: n must be a positive integer, got 0
    """
    def decorate(fn):
        sig = inspect.signature(fn)
        unknown = set(constraints) - set(sig.parameters)
        if unknown:
            raise TypeError(f"{fn.__qualname__} has no parameters {sorted(unknown)} to constrain")

        @functools.wraps(fn)
        def checked(*args, **kwargs):
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            for name, constraint in constraints.items():
                bound.arguments[name] = validate(name, bound.arguments[name], constraint)
            return fn(*bound.args, **bound.kwargs)

        checked.parameter_constraints = dict(constraints)
        return checked

    return decorate
