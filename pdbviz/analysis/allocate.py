"""Separability-guided bit allocation.

The algorithm, in prose. Each layer ``l`` has a *difficulty* ``d_l`` in (0, 1] (scaled so the largest is 1)
derived from how separable its input is (less separable = more difficult):
``1 / J`` for the Fisher criterion (within-class over between-class scatter), ``1 - acc`` (floored at 0.01) for the
probe and k-NN accuracies, ``(1 - s) / 2`` for the silhouette. Quantizing the
layer's weights to ``b`` bits adds noise whose power falls as ``4^-b`` (each bit
halves the step of a uniform quantizer). The allocation minimises the
difficulty-weighted noise

    cost(b) = sum_l d_l * 4^(-b_l)

over bit-widths ``b_l`` from ``choices`` that never increase with depth
(``b_1 >= b_2 >= ...``, the paper's progressively decreasing shape) and whose
parameter-weighted memory meets the budget: ``sum_l p_l b_l <= B sum_l p_l``
for an average of ``B`` bits, or ``sum_l p_l b_l / 8192 <= K`` KiB. Non-increasing
sequences are enumerated exactly (they are few: C(L + k - 1, k - 1) for L layers
and k choices); ties go to the smaller memory. A budget below every layer at the
smallest choice is impossible and raises ValueError naming the smallest
feasible budget.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import nn

from ..quant import BitSchedule, discover, quantizable_layers
from ..quant.quantizers import check_bits
from .separability import METRICS

_MAX_SEQUENCES = 2_000_000


def difficulty(values: Sequence[float], metric: str) -> np.ndarray:
    """Map separability values to difficulties, scaled so the largest is 1 (see the module docstring)."""
    v = np.asarray(values, dtype=np.float64)
    if metric == "fisher":
        d = 1.0 / np.maximum(v, 1e-6)
    elif metric in ("probe", "knn"):
        d = np.maximum(1.0 - v, 0.01)
    elif metric == "silhouette":
        d = np.maximum((1.0 - v) / 2.0, 0.01)
    else:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if not np.isfinite(d).all():
        raise ValueError(f"the profile's {metric!r} values contain NaN; cannot allocate from them")
    return d / d.max()


def parse_budget(budget) -> tuple[str, float]:
    """``2.0`` -> average bits; ``"56 KiB"`` / ``"56kib"`` -> KiB of quantized weights."""
    if isinstance(budget, (int, float)) and not isinstance(budget, bool):
        if not math.isfinite(budget) or budget <= 0:
            raise ValueError(f"budget must be a positive number of average bits or a string like '64 KiB', got {budget!r}")
        return "bits", float(budget)
    if isinstance(budget, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(kib|bits?)\s*", budget, flags=re.IGNORECASE)
        if m and float(m.group(1)) > 0:
            return ("kib" if m.group(2).lower() == "kib" else "bits"), float(m.group(1))
    raise ValueError(f"budget must be a positive number of average bits or a string like '64 KiB' or '1.5 bits', "
                     f"got {budget!r}")


def allocate_bits(profile: pd.DataFrame, model: nn.Module, budget, choices: Sequence[int] = (1, 2, 4, 8),
                  metric: str = "fisher", a_bits: int | None = None) -> BitSchedule:
    """A non-increasing bit schedule that meets ``budget`` and favours less separable layers.

    Args:
        profile: ``separability_profile(model, ...)`` (rows for every quantizable layer).
        model: the model to allocate for (its parameter counts weigh the memory).
        budget: average weight bits (a number, or ``"1.5 bits"``) or KiB of
            quantized weights (``"40 KiB"``).
        choices: allowed bit-widths.
        metric: the profile column to use.
        a_bits: activation bits for every layer (default full precision).

    The algorithm is in this module's docstring.

    Example:
        >>> import pandas as pd
        >>> from torch import nn
        >>> net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10), nn.Linear(10, 10))
        >>> prof = pd.DataFrame({"layer": ["0", "1", "2"], "fisher": [0.1, 1.0, 9.0]})
        >>> allocate_bits(prof, net, budget=3).w_bits
        [4, 4, 1]
    """
    if not isinstance(profile, pd.DataFrame) or "layer" not in profile:
        raise TypeError("profile must be the DataFrame that separability_profile returns")
    if metric not in profile.columns:
        raise ValueError(f"metric {metric!r} is not a column of the profile; it has {list(profile.columns)}")
    choices = sorted({check_bits(c, "choices") for c in choices}, reverse=True)
    if not choices:
        raise ValueError("choices is empty")
    layers = quantizable_layers(model)
    by_layer = profile.set_index("layer")[metric]
    missing = [n for n in layers if n not in by_layer.index]
    if missing:
        raise ValueError(f"the profile has no {metric!r} value for layers {missing}; compute it on this model")
    d = difficulty([by_layer[n] for n in layers], metric)
    layout = discover(model)
    p = np.array([layout[n].numel for n in layers], dtype=np.float64)
    kind, value = parse_budget(budget)
    limit = value * p.sum() if kind == "bits" else value * 8192
    lo = min(choices)
    if lo * p.sum() > limit * (1 + 1e-12):
        raise ValueError(f"budget {budget!r} is impossible with choices {sorted(choices)}: the smallest feasible "
                         f"budget is {lo:g} average bits ({lo * p.sum() / 8192:.2f} KiB)")
    L, k = len(layers), len(choices)
    if math.comb(L + k - 1, k - 1) > _MAX_SEQUENCES:
        raise ValueError(f"{L} layers with {k} choices give too many schedules to search; use fewer choices")
    best = None
    c = np.array(choices, dtype=np.float64)
    # a non-increasing sequence is fixed by how many layers take each choice, in order
    for counts in _compositions(L, k):
        bits = np.repeat(c, counts)
        mem = float(p @ bits)
        if mem > limit * (1 + 1e-12):
            continue
        cost = float(d @ np.power(4.0, -bits))
        if best is None or (cost, mem) < (best[0], best[1]):
            best = (cost, mem, bits)
    return BitSchedule.from_list(layers, [int(b) for b in best[2]], a_bits)


def _compositions(n: int, k: int):
    """All k-tuples of non-negative integers summing to n (stars and bars)."""
    for bars in itertools.combinations(range(n + k - 1), k - 1):
        prev, out = -1, []
        for b in bars:
            out.append(b - prev - 1)
            prev = b
        out.append(n + k - 2 - prev)
        yield out


def average_bits(model: nn.Module, schedule: BitSchedule | str) -> float:
    """Parameter-weighted average weight bits of ``model`` under ``schedule``."""
    from ..quant import memory_summary

    if isinstance(schedule, str):
        schedule = BitSchedule.from_string(schedule, model)
    return memory_summary(model, schedule).avg_bits
