"""From a sensitivity measure to a predicted loss per (layer, weight bits, input bits), the allocator's input.

Every measure becomes a cost that grows with sensitivity, per layer and
operand: its registration's ``to_cost`` (``METRIC_INFO[m].cost`` says how).
The built-in ones:

=================  ==================================================
``hawq``           ``Omega / 2``: HAWQ's second-order loss increase
``output_error``   ``score / 2``: the empirical-Fisher loss increase
``kl``             the KL divergence itself (nats)
``loss_increase``  ``max(increase, 0)`` (nats)
``ablation``       ``max(accuracy drop, 0)``
``sqnr``           ``10^(-sqnr/10)``: the logits' relative noise power
``cka``            ``1 - CKA``
separability       ``d (4^-w + 4^-a)``: the difficulty ``d`` of ``difficulty``
                   (1/J, 1 - accuracy, (1 - s)/2; largest 1) times the noise
                   power of a uniform quantizer at ``w`` and ``a`` bits
=================  ==================================================

The predicted loss of a choice is the weight's cost at ``w`` plus the input's
at ``a`` (the separable, additive assumption of HAWQ and ModelOpt), with 0 at
32 bits. Bit-widths the frame lacks are interpolated: linearly in the
logarithm of the cost between measured bit-widths (noise power is
exponential in bits), and beyond them by a factor 4 per bit (each bit halves
a uniform quantizer's step), linearly where a cost is 0. Costs are
comparable across layers of one measure, not across measures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..quant.quantizers import FULL_PRECISION, check_bits
from .separability_allocation import difficulty
from .metrics import check_metric_names, get_metric


def _separability(metric: str) -> bool:
    return get_metric(metric).scope == "separability"


def metric_cost(metric: str, values) -> np.ndarray:
    """Values of a per-bit ``metric`` as costs that grow with sensitivity (see the module docstring).

    Example:
        >>> metric_cost("sqnr", [10.0, 20.0]).tolist()
        [0.1, 0.01]
    """
    (metric,) = check_metric_names(metric)
    if _separability(metric):
        raise ValueError(f"metric {metric!r} is bit-independent: its cost is the difficulty times the noise "
                         "power, see predicted_loss")
    return np.asarray(get_metric(metric).to_cost(np.asarray(values, dtype=float)), dtype=float)


def interpolate_cost(measured: dict[int, float], bits: int) -> float:
    """The cost at ``bits`` from costs measured at other bit-widths (see the module docstring).

    Example:
        >>> interpolate_cost({2: 1.0, 4: 0.0625}, 3), interpolate_cost({2: 1.0, 4: 0.0625}, 5)
        (0.25, 0.015625)
    """
    if bits == FULL_PRECISION:
        return 0.0
    if bits in measured:
        return float(measured[bits])
    known = sorted(measured)
    lo = [b for b in known if b < bits]
    hi = [b for b in known if b > bits]
    if lo and hi:
        b0, b1 = lo[-1], hi[0]
        c0, c1 = measured[b0], measured[b1]
        t = (bits - b0) / (b1 - b0)
        if c0 > 0 and c1 > 0:
            return float(math.exp((1 - t) * math.log(c0) + t * math.log(c1)))
        return float((1 - t) * c0 + t * c1)
    b0 = lo[-1] if lo else hi[0]
    return float(measured[b0] * 4.0 ** (b0 - bits))


def predicted_loss(frame: pd.DataFrame, metric: str, w_bits: Sequence[int] = tuple(range(1, 9)),
                   a_bits: Sequence[int] = (FULL_PRECISION,), layers: Sequence[str] | None = None) -> pd.DataFrame:
    """The allocator's table: predicted loss of every (layer, w_bits, a_bits) from one measure of ``frame``.

    Args:
        frame: ``sensitivity_metrics(...)`` (or ``separability_profile(...)``
            for a separability measure: one column per measure).
        metric: the measure to use.
        w_bits, a_bits: the choices (32 = full precision). Input choices
            below 32 need the measure's input rows (``sensitivity_metrics(...,
            a_bits=...)``) except for separability; a layer without them (the
            network's input) gets ``a_bits = 32`` only.
        layers: limit the layers (default: every layer of the frame).

    Returns a DataFrame with columns ``layer``, ``w_bits``, ``a_bits``, ``loss``.

    Example:
        >>> f = pd.DataFrame({"layer": ["fc"] * 2, "depth": 0, "metric": "kl", "operand": "weight",
        ...                   "bits": [2, 8], "value": [0.5, 0.001]})
        >>> predicted_loss(f, "kl", w_bits=(2, 8)).loss.tolist()
        [0.5, 0.001]
    """
    (metric,) = check_metric_names(metric)
    if not isinstance(frame, pd.DataFrame) or "layer" not in frame.columns:
        raise TypeError("frame must be the DataFrame that sensitivity_metrics returns")
    w_bits = sorted({check_bits(b, "w_bits") for b in w_bits})
    a_bits = sorted({check_bits(b, "a_bits") for b in a_bits})
    if not w_bits or not a_bits:
        raise ValueError("w_bits and a_bits must each hold at least one bit-width")
    if _separability(metric):
        values = _separability_values(frame, metric)
    else:
        values = _per_bit_values(frame, metric)
    if layers is not None:
        missing = [n for n in layers if n not in values]
        if missing:
            raise ValueError(f"the frame has no {metric!r} rows for layers {missing}")
        values = {n: values[n] for n in layers}
    if not values:
        raise ValueError(f"the frame has no {metric!r} rows")
    rows = []
    if _separability(metric):
        d = difficulty(list(values.values()), metric)
        noise = {b: 0.0 if b == FULL_PRECISION else 4.0 ** -b for b in set(w_bits) | set(a_bits)}
        for name, dl in zip(values, d):
            rows += [(name, w, a, float(dl) * (noise[w] + noise[a])) for w in w_bits for a in a_bits]
    else:
        needs_inputs = any(a != FULL_PRECISION for a in a_bits)
        if needs_inputs and not any(v["input"] for v in values.values()):
            raise ValueError(f"the frame has no input rows of {metric!r}; compute them with "
                             f"sensitivity_metrics(..., a_bits={tuple(a for a in a_bits if a != FULL_PRECISION)})")
        for name, v in values.items():
            weight_cost = {w: interpolate_cost(v["weight"], w) for w in w_bits}
            inputs = [a for a in a_bits if a == FULL_PRECISION or v["input"]]
            rows += [(name, w, a, weight_cost[w] + interpolate_cost(v["input"], a)) for w in w_bits for a in inputs]
    return pd.DataFrame(rows, columns=["layer", "w_bits", "a_bits", "loss"])


def _separability_values(frame: pd.DataFrame, metric: str) -> dict[str, float]:
    if metric in frame.columns:  # a separability profile
        rows = frame[frame.layer != "logits"]
        return dict(zip(rows.layer, rows[metric].astype(float)))
    rows = frame[frame.metric == metric]
    return dict(zip(rows.layer, rows.value.astype(float)))


def _per_bit_values(frame: pd.DataFrame, metric: str) -> dict[str, dict]:
    if "metric" not in frame.columns:
        raise ValueError(f"frame has no 'metric' column; {metric!r} comes from sensitivity_metrics")
    rows = frame[frame.metric == metric]
    out: dict[str, dict] = {}
    for r in rows.itertuples():
        if pd.isna(r.value):
            raise ValueError(f"the {metric!r} value of layer {r.layer!r} at {r.bits} bits ({r.operand}) is NaN")
        entry = out.setdefault(r.layer, {"weight": {}, "input": {}})
        entry[r.operand][int(r.bits)] = float(metric_cost(metric, [r.value])[0])
    for name, entry in out.items():
        if not entry["weight"]:
            raise ValueError(f"the frame has no weight rows of {metric!r} for layer {name!r}")
    return out

