"""Schedule entries and budgets, parsed once into typed values.

An entry is what ``compare(schedules=[...])``, ``sweep`` and the CLI's
``--schedules`` take: a preset (``"float"``, ``"halving"``, ``"linear"``,
``"increasing"``), the float control ``"float:long"`` (the float model
trained as long as the quantized runs), a one-line schedule (``"8-4-2-1"``, ``"dorefa:4"``,
``"8-4-2-1/8-4-2-1"``), a ``BitSchedule``, or an allocation:

``"alloc:B"``
    separability-allocated (the paper's heuristic, non-increasing bits) from
    the trained float model's separability profile;
``"alloc:METRIC:B"``
    the least predicted loss by any measure of ``sensitivity_metrics``
    (``predicted_loss`` over weight bits ``ALLOC_BITS``, inputs at 32 bits,
    any shape).

The budget ``B`` is average weight bits (``"1.5"``), KiB (``"40KiB"``), the
memory of another entry (``"halving"``: the memory of 8-4-2-1) or, with a
metric, BOPs (``"2e6 BOPs"``). ``parse_entry`` turns an entry into a
``ScheduleEntry`` (its schedule known now) or an ``AllocEntry`` (a typed
``Budget`` and a metric, resolved once the float model is trained); an
allocation's budget is never turned back into text.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from torch import nn

from .._checks import OneOf, did_you_mean, validate, warn_renamed
from ..quant import BitSchedule, memory_summary
from ..quant.presets import PRESETS, NamedSchedule, resolve_preset
from ..quant.quantizers import WEIGHT_QUANTIZERS
from .budgets import parse_budget
from .separability_allocation import allocate_bits
from .costs import predicted_loss
from .front import allocate
from .metrics import METRIC_INFO

log = logging.getLogger(__name__)

#: prefix of an allocated schedule entry: ``"alloc:1.5"`` (average bits), ``"alloc:40KiB"``, ``"alloc:halving"``
#: (separability, non-increasing) or ``"alloc:METRIC:BUDGET"`` (any measure of ``sensitivity_metrics``).
ALLOC_PREFIX = "alloc:"
#: the entry of the float control: the float model trained as long as the quantized runs (``compare`` labels it).
FLOAT_CONTROL = "float:long"
#: the weight bit-widths an ``"alloc:METRIC:BUDGET"`` entry chooses from, each measured by the metric.
ALLOC_BITS = (1, 2, 4, 8)
#: the units of a ``Budget``: average weight bits, KiB of quantized weights, bit operations per sample, latency.
BUDGET_UNITS = ("bits", "kib", "bops", "latency")


@dataclass(frozen=True)
class Budget:
    """A budget: a positive ``value`` in ``unit`` (one of ``BUDGET_UNITS``).

    ``limits()`` is the form ``pareto_front``, ``Front.index`` and ``allocate`` take.

    Example:
        >>> Budget.parse("40 KiB"), Budget.parse(1.5).limits()
        (Budget(value=40.0, unit='kib'), {'bits': 1.5})
    """

    value: float
    unit: str = "bits"

    def __post_init__(self):
        validate("unit", self.unit, OneOf(BUDGET_UNITS))
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"a budget must be a positive number of {self.unit}, got {v!r}")
        object.__setattr__(self, "value", float(v))

    @classmethod
    def parse(cls, budget) -> Budget:
        """A ``Budget`` from a number (average bits), a string (``"1.5 bits"``, ``"40 KiB"``, ``"2e8 BOPs"``,
        ``"1.5 GBOPs"``, as ``analysis.parse_budget`` reads them) or a ``Budget``."""
        if isinstance(budget, Budget):
            return budget
        unit, value = parse_budget(budget)
        return cls(value, unit)

    def limits(self) -> dict[str, float]:
        """``{unit: value}``: what ``pareto_front(budget=...)`` and ``allocate`` take."""
        return {self.unit: self.value}

    def average_bits(self, model: nn.Module) -> float:
        """A memory budget as average weight bits over ``model``'s quantizable weights (KiB x 8192 / weights)."""
        if self.unit == "bits":
            return self.value
        if self.unit == "kib":
            return self.value * 8192 / memory_summary(model).weight_params
        raise ValueError(f"a {self.unit} budget is not a memory budget; give average bits or KiB")


@dataclass(frozen=True)
class Entry:
    """A parsed schedule entry: ``text`` as given (stripped), ``label`` in words, ``shape`` (``quant.presets.SHAPES``).

    The concrete entries are ``ScheduleEntry``, ``AllocEntry`` and ``InvalidEntry``.
    """

    text: str
    label: str
    shape: str

    @property
    def kind(self) -> str:
        """Deprecated name of ``shape``."""
        warn_renamed("Entry.kind", "Entry.shape", "a schedule's shape, not a module's kind")
        return self.shape


@dataclass(frozen=True)
class ScheduleEntry(Entry):
    """A preset, a one-line schedule or a ``BitSchedule``: its schedule is known (None for float)."""

    schedule: BitSchedule | None = None

    @property
    def is_float_preset(self) -> bool:
        """True for the ``"float"`` preset (the float model itself, trained once per seed)."""
        return self.text == "float" and self.schedule is None

    @property
    def is_float_control(self) -> bool:
        """True for ``"float:long"``: the float model trained as long as the quantized runs."""
        return self.text == FLOAT_CONTROL and self.schedule is None

    def named(self) -> NamedSchedule:
        """The entry as a ``NamedSchedule`` (what runs and tables take)."""
        return NamedSchedule(self.text, self.label, self.shape, self.schedule)


@dataclass(frozen=True)
class AllocEntry(Entry):
    """``"alloc:B"`` (``metric`` None: separability) or ``"alloc:METRIC:B"``: a schedule chosen from the trained
    float model's measurements within ``budget``."""

    budget: Budget | None = None
    metric: str | None = None

    def resolve(self, model: nn.Module, profile: pd.DataFrame | None = None,
                sensitivity: pd.DataFrame | None = None) -> NamedSchedule:
        """The allocated schedule: from the separability ``profile`` (``allocate_bits``), or from the
        ``sensitivity`` frame's ``metric`` (``predicted_loss`` at ``ALLOC_BITS``, then ``allocate``)."""
        if self.metric is None:
            if profile is None:
                raise ValueError("an 'alloc:' schedule needs the float model's separability profile")
            schedule = allocate_bits(profile, model, self.budget.average_bits(model))
        else:
            if sensitivity is None or self.metric not in set(sensitivity.metric):
                raise ValueError(f"{self.text!r} needs the float model's {self.metric!r} sensitivity "
                                 f"(sensitivity_metrics(..., metrics=[{self.metric!r}]))")
            loss = predicted_loss(sensitivity, self.metric, w_bits=ALLOC_BITS, a_bits=(32,))
            schedule = allocate(model, loss, self.budget.limits())
        return NamedSchedule(self.text, self.label, "allocated", schedule)


@dataclass(frozen=True)
class InvalidEntry(Entry):
    """An entry that could not be parsed, kept with its ``error`` so that the others still run."""

    error: str = ""

    def named(self) -> NamedSchedule:
        """A placeholder ``NamedSchedule`` (no schedule) under which the table records the error."""
        return NamedSchedule(self.label, self.label, self.shape, None)


def parse_entry(entry, model: nn.Module) -> Entry:
    """Parse one schedule entry for ``model`` (see the module docstring); an ``Entry`` is returned as it is.

    Raises ValueError or TypeError naming the entry and what is allowed.

    Example:
        >>> from pdbviz import build_model
        >>> m = build_model("lenet")
        >>> e = parse_entry("alloc:kl:40KiB", m)
        >>> type(e).__name__, e.label, e.metric, e.budget
        ('AllocEntry', 'allocated (kl) @ 40KiB', 'kl', Budget(value=40.0, unit='kib'))
        >>> parse_entry("halving", m).label
        '8-4-2-1'
        >>> e = parse_entry("float:long", m)
        >>> e.shape, e.is_float_control, e.schedule is None
        ('float', True, True)
    """
    if isinstance(entry, Entry):
        return entry
    if isinstance(entry, str) and entry.replace(" ", "") == FLOAT_CONTROL:
        return ScheduleEntry(FLOAT_CONTROL, f"{PRESETS['float'].label} (long)", "float", None)
    if isinstance(entry, str) and entry.strip().startswith(ALLOC_PREFIX):
        return _parse_alloc(entry.strip(), model)
    named = resolve_preset(entry, model)
    return ScheduleEntry(named.entry, named.label, named.shape, named.schedule)


def parse_entries(schedules, model: nn.Module, errors: str = "raise") -> list[Entry]:
    """Parse every entry of ``schedules`` (one entry or a sequence) for ``model``.

    ``errors="raise"`` raises the first entry's error; ``"keep"`` keeps an
    ``InvalidEntry`` in its place (``compare`` records it and runs the others).

    Example:
        >>> from pdbviz import build_model
        >>> [e.label for e in parse_entries(["float", "2", "8-x"], build_model("lenet"), errors="keep")]
        ['float-32', 'uniform 2-bit', '8-x']
    """
    validate("errors", errors, OneOf(("raise", "keep")))
    if isinstance(schedules, (str, BitSchedule, Entry)):
        schedules = [schedules]
    out = []
    for entry in schedules:
        try:
            out.append(parse_entry(entry, model))
        except (ValueError, TypeError) as err:
            if errors == "raise":
                raise
            label = entry.strip() if isinstance(entry, str) else repr(entry)
            log.warning("schedule %s failed: %s", label, err)
            out.append(InvalidEntry(label, label, "custom", f"{type(err).__name__}: {err}"))
    return out


def entry_metrics(entries: Sequence[Entry]) -> list[str]:
    """The sensitivity metrics that the ``AllocEntry`` items of ``entries`` name, in order, each once.

    Example:
        >>> from pdbviz import build_model
        >>> entry_metrics(parse_entries(["alloc:2", "alloc:kl:2", "alloc:hawq:halving", "alloc:kl:4"],
        ...                             build_model("lenet")))
        ['kl', 'hawq']
    """
    return list(dict.fromkeys(e.metric for e in entries if isinstance(e, AllocEntry) and e.metric is not None))


def resolve_entries(entries: Sequence[Entry], model: nn.Module, profile: pd.DataFrame | None = None,
                    sensitivity: pd.DataFrame | BaseException | None = None) -> list[tuple[NamedSchedule, str]]:
    """Each parsed entry as ``(NamedSchedule, error)``: resolved (error ``""``), or a placeholder with its error.

    ``sensitivity`` may be the error that measuring it raised: the entries
    that need it fail with that error; one failing entry never stops the others.

    Example:
        >>> from pdbviz import build_model
        >>> m = build_model("lenet")
        >>> [(named.label, error.split(" needs")[0]) for named, error in
        ...  resolve_entries(parse_entries(["4", "alloc:kl:2"], m), m)]
        [('uniform 4-bit', ''), ('alloc:kl:2', "ValueError: 'alloc:kl:2'")]
    """
    out = []
    for entry in entries:
        if isinstance(entry, InvalidEntry):
            out.append((entry.named(), entry.error))
            continue
        if isinstance(entry, ScheduleEntry):
            out.append((entry.named(), ""))
            continue
        try:
            if isinstance(sensitivity, BaseException) and entry.metric is not None:
                raise ValueError(f"measuring the sensitivity for {entry.text!r} failed: "
                                 f"{type(sensitivity).__name__}: {sensitivity}")
            frame = None if isinstance(sensitivity, BaseException) else sensitivity
            out.append((entry.resolve(model, profile, frame), ""))
        except (ValueError, TypeError) as err:
            log.warning("schedule %s failed: %s", entry.text, err)
            out.append((NamedSchedule(entry.text, entry.text, "custom", None), f"{type(err).__name__}: {err}"))
    return out


def resolve_schedule(entry, model: nn.Module, profile: pd.DataFrame | None = None,
                     sensitivity: pd.DataFrame | None = None) -> NamedSchedule:
    """One entry of ``compare(schedules=...)`` as a ``NamedSchedule`` (entry, label, kind, schedule).

    Allocations need the float model's ``profile`` (``"alloc:B"``) or its
    ``sensitivity`` frame with METRIC (``"alloc:METRIC:B"``).

    Example:
        >>> from pdbviz import build_model
        >>> resolve_schedule("halving", build_model("lenet")).label
        '8-4-2-1'
    """
    parsed = parse_entry(entry, model)
    if isinstance(parsed, AllocEntry):
        return parsed.resolve(model, profile, sensitivity)
    if isinstance(parsed, InvalidEntry):
        raise ValueError(parsed.error)
    return parsed.named()


def _parse_alloc(text: str, model: nn.Module) -> AllocEntry:
    rest, metric = text[len(ALLOC_PREFIX):].strip(), None
    if ":" in rest:
        name, budget = (part.strip() for part in rest.split(":", 1))
        metrics = tuple(METRIC_INFO)
        if name in metrics:
            metric, rest = name, budget
        elif name not in WEIGHT_QUANTIZERS:  # "alloc:symmetric:2" is the memory of symmetric:2
            raise ValueError(f"unknown metric {name!r} in schedule entry {text!r}; available: "
                             f"{', '.join(metrics)}.{did_you_mean(name, metrics)}")
    budget, label = _alloc_budget(rest, model, metric)
    return AllocEntry(text, label, "allocated", budget, metric)


def _alloc_budget(text: str, model: nn.Module, metric: str | None) -> tuple[Budget, str]:
    """The budget of an allocation and its label; ``text`` follows ``"alloc:"`` (or ``"alloc:METRIC:"``)."""
    name = "allocated" if metric is None else f"allocated ({metric})"
    entry = f"alloc:{text}" if metric is None else f"alloc:{metric}:{text}"
    try:
        bits = float(text)
    except ValueError:
        pass
    else:
        return Budget.parse(bits), f"{name} @ {bits:g} bits"
    units = ("kib", "bit", "bits") if metric is None else ("kib", "bit", "bits", "bops")
    if text.lower().replace(" ", "").endswith(units):
        return Budget.parse(text), f"{name} @ {text}"
    forms = "average bits (alloc:1.5), KiB (alloc:40KiB) or another schedule (alloc:halving)" if metric is None \
        else (f"average bits (alloc:{metric}:1.5), KiB (alloc:{metric}:40KiB), BOPs (alloc:{metric}:2e6 BOPs) or "
              f"another schedule (alloc:{metric}:halving)")
    try:
        reference = resolve_preset(text, model)
    except (ValueError, TypeError) as err:
        raise ValueError(f"the budget of {entry!r} must be {forms}: {err}") from None
    if reference.schedule is None:
        raise ValueError(f"{entry!r}: {reference.label} has no quantized memory to match")
    kib = memory_summary(model, reference.schedule).quantized_weight_kib
    return Budget(kib, "kib"), f"{name} @ memory of {reference.label}"
