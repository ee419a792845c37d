"""The allocation problem as arrays: per layer, its allowed ``(w_bits, a_bits)`` choices and what each costs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..quant.discovery import ModelLayout
from ..quant.quantizers import FULL_PRECISION

_TOL = 1e-12
_LABEL = {"weight_bits": "memory (weight bits)", "bops": "BOPs", "latency": "latency"}


@dataclass
class Problem:
    """Arrays of the allocation problem.

    ``costs[l]`` has one row per choice of layer ``l`` and one column per
    resource the dynamic programme tracks: the primary cost first, then each
    constrained one (``limits``; the primary's limit is infinite there).
    ``values[name][l]`` is every resource per choice, for the front's table.
    """

    layers: list[str]
    choices: list[np.ndarray]   # (K_l, 2): w_bits, a_bits
    costs: list[np.ndarray]     # (K_l, R)
    losses: list[np.ndarray]
    limits: np.ndarray          # (R,): the budgets (with a relative tolerance of 1e-12) less the fixed part;
                                # the primary's is infinite unless only the front below its budget is wanted
    min_rest: list[np.ndarray]  # L + 1 vectors (R,): the cheapest completion from layer l on
    values: dict                # "weight_bits" | "bops" | "latency" -> list of (K_l,) arrays
    fixed: dict                 # the same resources of the layers left out of the allocation
    total_params: float
    resources: list[str]
    budget_text: str

    @property
    def wbits(self) -> list[np.ndarray]:
        return [c[:, 0].astype(float) for c in self.choices]

    @property
    def n_resources(self) -> int:
        return len(self.resources)

    def infeasible_message(self) -> str:
        low = self.min_rest[0] + np.array([self.fixed[r] for r in self.resources])
        parts = [f"{_LABEL[r]} at least {v:,.6g}" for r, v, lim in zip(self.resources, low, self.limits)
                 if math.isfinite(lim)]
        return f"budget {self.budget_text} cannot be met with the allowed choices: " + ", ".join(parts)

    def table(self, idx: np.ndarray) -> pd.DataFrame:
        """One row per point: the totals of every resource, the loss and the bit-widths per layer."""
        cols = {}
        L = len(self.layers)
        for name, per_layer in self.values.items():
            total = np.full(len(idx), self.fixed[name], dtype=np.float64)
            for l in range(L):
                total += per_layer[l][idx[:, l]]
            cols[name] = total
        loss = np.zeros(len(idx))
        for l in range(L):
            loss += self.losses[l][idx[:, l]]
        w = np.column_stack([self.choices[l][idx[:, l], 0] for l in range(L)]) if L else np.zeros((len(idx), 0))
        a = np.column_stack([self.choices[l][idx[:, l], 1] for l in range(L)]) if L else np.zeros((len(idx), 0))
        frame = pd.DataFrame({"loss": loss, "weight_kib": cols["weight_bits"] / 8192,
                              "avg_bits": cols["weight_bits"] / self.total_params, "bops": cols["bops"]})
        if "latency" in cols:
            frame["latency"] = cols["latency"]
        frame["weight_bits"] = cols["weight_bits"]
        frame["w_bits"] = [tuple(int(v) for v in row) for row in w]
        frame["a_bits"] = [tuple(int(v) for v in row) for row in a]
        return frame


def _allowed_pairs(name: str, spec) -> tuple[set, set]:
    """``allowed[name]`` as a set of weight bit-widths and a set of (w, a) pairs."""
    ws, pairs = set(), set()
    if isinstance(spec, (str, bytes)) or not hasattr(spec, "__iter__"):
        raise TypeError(f"allowed[{name!r}] must be a list of weight bit-widths or of (w_bits, a_bits) pairs, "
                        f"got {spec!r}")
    for item in spec:
        if isinstance(item, (tuple, list)) and len(item) == 2:
            pairs.add((int(item[0]), int(item[1])))
        else:
            ws.add(int(item))
    return ws, pairs


def build_problem(layout: ModelLayout, loss: pd.DataFrame, allowed: Mapping | None, latency: pd.DataFrame | None,
                  limits: dict, primary: str, below_budget: bool = False) -> Problem:
    """Turn the loss (and latency) tables, the model's layout and the budgets into a ``Problem``; with
    ``below_budget``, the budget on the primary cost limits the problem too (only the front below it is wanted)."""
    names = layout.names
    unknown = sorted(set(loss.layer) - set(names))
    if unknown:
        raise ValueError(f"the loss table names layers {unknown} that the model does not have; its layers are "
                         f"{names}")
    if allowed is not None:
        bad = sorted(set(allowed) - set(loss.layer))
        if bad:
            raise ValueError(f"allowed names layers {bad} without rows in the loss table")
    layers = [n for n in names if n in set(loss.layer)]
    if not layers:
        raise ValueError("the loss table has no rows")
    entries = {e.name: (i, e) for i, e in enumerate(layout.entries)}
    lat = None
    if latency is not None:
        lat = {(r.layer, int(r.w_bits), int(r.a_bits)): float(r.latency) for r in latency.itertuples()}
    choices, losses, mem, bops, lats = [], [], [], [], []
    for name in layers:
        rows = loss[loss.layer == name]
        pairs = list(zip(rows.w_bits.astype(int), rows.a_bits.astype(int)))
        if len(set(pairs)) != len(pairs):
            raise ValueError(f"the loss table has several rows for the same (w_bits, a_bits) of layer {name!r}")
        i, entry = entries[name]
        keep = np.ones(len(pairs), dtype=bool)
        if not (i > 0 and entry.input_quantizable):
            keep &= np.array([a == FULL_PRECISION for _, a in pairs])
        if allowed is not None and name in allowed:
            ws, ps = _allowed_pairs(name, allowed[name])
            keep &= np.array([w in ws or (w, a) in ps for w, a in pairs])
        if not keep.any():
            why = "its input cannot be quantized (a_bits must be 32)" if not (i > 0 and entry.input_quantizable) \
                else "allowed excludes them all"
            raise ValueError(f"layer {name!r} has no allowed choice: {why}; its rows are {pairs}")
        pairs = [p for p, k in zip(pairs, keep) if k]
        choice = np.array(pairs, dtype=np.int64)
        p, macs = float(entry.numel), float(entry.macs)
        choices.append(choice)
        losses.append(rows.loss.to_numpy(dtype=float)[keep])
        mem.append(p * choice[:, 0].astype(float))
        bops.append(macs * choice[:, 0] * choice[:, 1])
        if lat is not None:
            missing = [pr for pr in pairs if (name, *pr) not in lat]
            if missing:
                raise ValueError(f"the latency table has no rows for layer {name!r} at (w_bits, a_bits) {missing}")
            lats.append(np.array([lat[(name, *pr)] for pr in pairs]))
    others = [e for e in layout.entries if e.name not in set(layers)]
    total_params = float(sum(e.numel for e in layout.entries))
    fixed = {"weight_bits": float(sum(e.numel * FULL_PRECISION for e in others)),
             "bops": float(sum(e.macs * FULL_PRECISION * FULL_PRECISION for e in others)), "latency": 0.0}
    values = {"weight_bits": mem, "bops": bops}
    if lat is not None:
        values["latency"] = lats
    key_of = {"memory": "weight_bits", "bops": "bops", "latency": "latency"}
    limit_of = {"weight_bits": math.inf, "bops": math.inf, "latency": math.inf}
    for k, v in limits.items():
        r = {"bits": "weight_bits", "kib": "weight_bits", "bops": "bops", "latency": "latency"}[k]
        value = v * total_params if k == "bits" else v * 8192 if k == "kib" else v
        limit_of[r] = min(limit_of[r], value)
    if limit_of["latency"] < math.inf and lat is None:
        raise ValueError("a latency budget needs a latency table (layer, w_bits, a_bits, latency)")
    resources = [key_of[primary]] + [r for r in ("weight_bits", "bops", "latency")
                                     if r != key_of[primary] and limit_of[r] < math.inf]
    for r in resources:
        if r == "bops" and not all(np.isfinite(b).all() for b in bops):
            raise ValueError("BOPs need the MACs of every layer: give example_input= (one batch) or a model with "
                             "pdbviz_info")
    costs = [np.column_stack([values[r][l] for r in resources]) for l in range(len(layers))]
    cap = limit_of[resources[0]] * (1 + _TOL) - fixed[resources[0]] if below_budget else math.inf
    limits_arr = np.array([cap] + [limit_of[r] * (1 + _TOL) - fixed[r] for r in resources[1:]])
    mins = np.array([c.min(0) for c in costs]) if costs else np.zeros((0, len(resources)))
    rest = [mins[l:].sum(0) for l in range(len(layers))] + [np.zeros(len(resources))]
    prob = Problem(layers, choices, costs, losses, limits_arr, rest, values, fixed, total_params, resources,
                   repr(limits))
    if np.any(rest[0] > limits_arr):
        raise ValueError(prob.infeasible_message())
    return prob
