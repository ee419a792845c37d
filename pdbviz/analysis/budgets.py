"""Budgets of a bit allocation: average weight bits, KiB of quantized weights, bit operations, latency.

``parse_budget`` reads one (a number of average bits or a string such as
``"40 KiB"``, ``"1.5 bits"``, ``"2e8 BOPs"``); ``parse_budgets`` reads any
number of them (also mappings and lists) into ``{unit: value}``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np

#: the units of a budget and the resource each one limits.
RESOURCE = {"bits": "memory", "kib": "memory", "bops": "bops", "latency": "latency"}


def parse_budget(budget) -> tuple[str, float]:
    """``2.0`` -> average bits; ``"56 KiB"`` / ``"56kib"`` -> KiB of quantized weights; ``"2e8 BOPs"`` /
    ``"1.5 GBOPs"`` -> bit operations per sample (prefixes k, M, G, T).

    Example:
        >>> parse_budget("1.5 GBOPs")
        ('bops', 1500000000.0)
    """
    if isinstance(budget, (int, float)) and not isinstance(budget, bool):
        if not math.isfinite(budget) or budget <= 0:
            raise ValueError(f"budget must be a positive number of average bits or a string like '64 KiB', got {budget!r}")
        return "bits", float(budget)
    if isinstance(budget, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(kib|bits?|([kmgt]?)bops)\s*", budget,
                         flags=re.IGNORECASE)
        if m and float(m.group(1)) > 0:
            unit = m.group(2).lower()
            if unit.endswith("bops"):
                return "bops", float(m.group(1)) * 1000.0 ** " kmgt".index(m.group(3).lower() or " ")
            return ("kib" if unit == "kib" else "bits"), float(m.group(1))
    raise ValueError(f"budget must be a positive number of average bits or a string like '64 KiB' or '1.5 bits' "
                     f"(or '2e8 BOPs'), got {budget!r}")


def parse_budgets(budget) -> dict[str, float]:
    """Budgets as ``{"bits" | "kib" | "bops" | "latency": value}``.

    Accepts a number (average weight bits), a string (``"1.5 bits"``,
    ``"40 KiB"``, ``"2e8 BOPs"``, ``"1.5 GBOPs"``), a mapping with those keys,
    or a list of any of them; None or ``{}`` is no budget.

    Example:
        >>> parse_budgets(["40 KiB", {"bops": 1e9}])
        {'kib': 40.0, 'bops': 1000000000.0}
    """
    if budget is None:
        return {}
    if isinstance(budget, Mapping):
        out = {}
        for key, value in budget.items():
            if key not in RESOURCE:
                raise ValueError(f"budget keys must be among {tuple(RESOURCE)}, got {key!r}")
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or \
                    not math.isfinite(value) or value <= 0:
                raise ValueError(f"budget {key!r} must be a positive number, got {value!r}")
            out[key] = float(value)
        return out
    if isinstance(budget, (list, tuple)):
        out = {}
        for item in budget:
            out.update(parse_budgets(item))
        return out
    unit, value = parse_budget(budget)
    return {unit: value}
