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
for an average of ``B`` bits, or ``sum_l p_l b_l / 8192 <= K`` KiB. The minimum
is exact: it is the point of the exact front of memory against this cost
(``front.pareto_front``, dynamic programming over the layers) that the budget
picks; ties go to the smaller memory. A budget below every layer at the
smallest choice is impossible and raises ValueError naming the smallest
feasible budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from torch import nn

from ..quant import BitSchedule, memory_summary, quantizable_layers
from ..quant.quantizers import check_bits
from .budgets import parse_budget
from .front import pareto_front
from .separability import SEPARABILITY_MEASURES


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
        raise ValueError(f"metric must be one of {SEPARABILITY_MEASURES}, got {metric!r}")
    if not np.isfinite(d).all():
        raise ValueError(f"the profile's {metric!r} values contain NaN; cannot allocate from them")
    return d / d.max()


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

    The algorithm is in this module's docstring; the minimum comes from the
    exact front of ``pareto_front`` (memory against the difficulty-weighted noise,
    non-increasing), of which this is the point the budget picks.

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
    if parse_budget(budget)[0] == "bops":
        raise ValueError(f"allocate_bits takes a memory budget (average bits or KiB), got {budget!r}; "
                         "pdbviz.analysis.allocate takes BOPs and latency budgets")
    loss = pd.DataFrame([{"layer": n, "w_bits": b, "a_bits": 32, "loss": dl * 4.0 ** -b}
                         for n, dl in zip(layers, d) for b in choices])
    front = pareto_front(model, loss, "memory", budget, monotone=True)
    low = front.table.iloc[0]
    unit, value = parse_budget(budget)
    if (low.avg_bits if unit == "bits" else low.weight_kib) > value * (1 + 1e-12):
        raise ValueError(f"budget {budget!r} is impossible with choices {sorted(choices)}: the smallest feasible "
                         f"budget is {low.avg_bits:g} average bits ({low.weight_kib:.2f} KiB)")
    w = front.table.w_bits.iloc[front.index()]
    return BitSchedule.from_list(layers, list(w), a_bits)


def average_bits(model: nn.Module, schedule: BitSchedule | str) -> float:
    """Parameter-weighted average weight bits of ``model`` under ``schedule``."""
    if isinstance(schedule, str):
        schedule = BitSchedule.from_string(schedule, model)
    return memory_summary(model, schedule).avg_bits
