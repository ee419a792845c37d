"""Allocated schedule entries of ``compare``: ``"alloc:B"`` and ``"alloc:METRIC:B"``, parsed and checked.

``"alloc:B"`` is separability-allocated (the paper's heuristic, non-increasing
bits); ``"alloc:METRIC:B"`` names any measure of ``sensitivity_metrics``. The
budget B is average weight bits (``"1.5"``), KiB (``"40KiB"``), the memory of
another entry (``"halving"``) or, with a metric, BOPs (``"2e6 BOPs"``).
``pdbviz.experiment.resolve_schedule`` turns an entry into a schedule from the
trained float model's measurements.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .._checks import did_you_mean
from ..quant import memory_summary
from ..quant.presets import resolve_preset
from ..quant.quantizers import WEIGHT_QUANTIZERS
from .metrics import METRICS

#: prefix of an allocated schedule entry: ``"alloc:1.5"`` (average bits), ``"alloc:40KiB"``, ``"alloc:halving"``
#: (separability, non-increasing) or ``"alloc:METRIC:BUDGET"`` (any measure of ``sensitivity_metrics``).
ALLOC_PREFIX = "alloc:"
#: the weight bit-widths an ``"alloc:METRIC:BUDGET"`` entry chooses from, each measured by the metric.
ALLOC_BITS = (1, 2, 4, 8)


def alloc_entry(entry: str) -> tuple[str | None, str]:
    """The metric (None for separability's ``"alloc:B"``) and the budget text of an ``"alloc:"`` entry.

    Raises ValueError naming the metric and the available ones when METRIC is unknown.

    Example:
        >>> alloc_entry("alloc:hawq:2"), alloc_entry("alloc:40KiB")
        (('hawq', '2'), (None, '40KiB'))
    """
    text = entry.strip()
    if not text.startswith(ALLOC_PREFIX):
        raise ValueError(f"an allocation entry starts with {ALLOC_PREFIX!r}, got {entry!r}")
    text = text[len(ALLOC_PREFIX):].strip()
    if ":" not in text:
        return None, text
    metric, budget = (part.strip() for part in text.split(":", 1))
    if metric in WEIGHT_QUANTIZERS and metric not in METRICS:  # "alloc:symmetric:2": the memory of symmetric:2
        return None, text
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} in schedule entry {entry.strip()!r}; available: "
                         f"{', '.join(METRICS)}.{did_you_mean(metric, METRICS)}")
    return metric, budget


def entry_metrics(schedules: Sequence) -> list[str]:
    """The metrics that the ``"alloc:METRIC:B"`` entries of ``schedules`` name, in order (unknown ones left out)."""
    out = []
    for entry in schedules:
        if isinstance(entry, str) and entry.strip().startswith(ALLOC_PREFIX):
            try:
                metric, _ = alloc_entry(entry)
            except ValueError:
                continue
            if metric is not None and metric not in out:
                out.append(metric)
    return out


def alloc_budget(text: str, model: nn.Module, metric: str | None = None) -> tuple[float | str, str]:
    """The budget of an ``"alloc:B"`` (or ``"alloc:METRIC:B"``) entry and its label: average bits, KiB, another
    entry's memory (or, with a metric, BOPs).

    ``text`` is what follows ``"alloc:"`` (or ``"alloc:METRIC:"``).

    Example:
        >>> from torch import nn
        >>> alloc_budget("2", nn.Linear(4, 4), "hawq")
        (2.0, 'allocated (hawq) @ 2 bits')
    """
    name = "allocated" if metric is None else f"allocated ({metric})"
    entry = f"alloc:{text}" if metric is None else f"alloc:{metric}:{text}"
    try:
        return float(text), f"{name} @ {float(text):g} bits"
    except ValueError:
        pass
    units = ("kib", "bit", "bits") if metric is None else ("kib", "bit", "bits", "bops")
    if text.lower().replace(" ", "").endswith(units):
        return text, f"{name} @ {text}"
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
    return f"{kib:.6f} KiB", f"{name} @ memory of {reference.label}"
