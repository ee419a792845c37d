"""The exact front of bit allocations: every non-dominated (cost, predicted loss) point, and one chosen by budget.

Each layer ``l`` picks one allowed pair ``(w_l, a_l)`` (weight bits, input
bits). Everything is additive over the layers (the separable assumption of
HAWQ and ModelOpt):

* predicted loss ``sum_l loss_l(w_l, a_l)`` (a table, e.g. ``predicted_loss``);
* memory of the quantized weights, ``sum_l p_l w_l`` bits (``p_l`` values);
* bit operations ``sum_l MACs_l w_l a_l`` per sample;
* latency ``sum_l t_l(w_l, a_l)`` from a table the user measured.

One cost is the *primary*: the front holds, for every value of it that some
allocation reaches, the least predicted loss, keeping only points that no
other beats in both; budgets on the other costs are constraints. With
``monotone=True`` the weight bits never increase in forward order (the
paper's shape).

The algorithm: dynamic programming over the layers in forward order. A state
is a partial allocation summarised by its costs, its loss and (monotone) its
last weight bit-width; after each layer only states that no other state with
the same last bit-width beats in every cost and the loss survive
(``nondominated``), and states that cannot meet a budget even with the
cheapest choices of the remaining layers are dropped. A discarded state can
never lead to a better allocation than the state that beats it, since the
same choices extend both, so the front is exact; the tests check it against
brute force on random instances.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from torch import nn

from ..quant import BitSchedule, BitSpec, discover
from ..quant.quantizers import check_bits
from ._bounds import Bounds
from ._choices import build_problem
from .budgets import RESOURCE, parse_budgets

PRIMARY = ("memory", "bops", "latency")
_TOL = 1e-12


@dataclass(frozen=True)
class Front:
    """The Pareto front of one allocation problem (see the module docstring).

    Attributes:
        table: one row per point, the primary cost ascending and the predicted
            loss descending: ``loss``, ``weight_kib``, ``avg_bits``, ``bops``
            (NaN without MACs), ``latency`` (with a latency table), ``w_bits``
            and ``a_bits`` (tuples, one value per layer).
        layers: the allocated layers, in forward order.
        primary: ``"memory"``, ``"bops"`` or ``"latency"``.
        budget: the budgets given (``{"bits" | "kib" | "bops" | "latency": value}``).
    """

    table: pd.DataFrame
    layers: tuple[str, ...]
    primary: str
    budget: dict = field(default_factory=dict)
    weight_mode: str = "dorefa"
    act_mode: str = "dorefa"
    _total_params: float = 0.0

    def __len__(self) -> int:
        return len(self.table)

    def schedule(self, i: int) -> BitSchedule:
        """The ``BitSchedule`` of point ``i`` (a row of ``table``)."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not -len(self) <= i < len(self):
            raise ValueError(f"i must be a point of the front, 0..{len(self) - 1}, got {i!r}")
        row = self.table.iloc[int(i)]
        return BitSchedule((n, BitSpec(int(w), int(a), self.weight_mode, self.act_mode))
                           for n, w, a in zip(self.layers, row.w_bits, row.a_bits))

    def index(self, budget=None) -> int:
        """The point with the least predicted loss whose primary cost meets ``budget`` (default: the front's)."""
        limits = parse_budgets(budget if budget is not None else self.budget)
        keys = [k for k in limits if RESOURCE[k] == self.primary]
        if not keys:
            raise ValueError(f"budget must limit the front's primary cost ({self.primary!r}: "
                             f"{_UNITS[self.primary]}), got {budget if budget is not None else self.budget!r}")
        column = _COLUMN[self.primary]
        limit = min(_in_primary_units(k, limits[k], self._total_params) for k in keys)
        ok = np.flatnonzero(self.table[column].to_numpy() <= limit * (1 + _TOL) + 1e-300)
        if not len(ok):
            low = float(self.table[column].iloc[0])
            raise ValueError(f"budget {budget if budget is not None else self.budget!r} is impossible: the smallest "
                             f"feasible budget is {_describe(self.primary, low, self._total_params)}")
        return int(ok[-1])

    def choose(self, budget=None) -> BitSchedule:
        """The schedule of ``index(budget)``: least predicted loss within the budget on the primary cost.

        Example:
            >>> net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
            >>> loss = pd.DataFrame({"layer": ["0", "0", "1", "1"], "w_bits": [1, 8, 1, 8], "a_bits": 32,
            ...                      "loss": [1.0, 0.0, 0.5, 0.0]})
            >>> pareto_front(net, loss).choose("4.5 bits").w_bits
            [8, 1]
        """
        return self.schedule(self.index(budget))


_UNITS = {"memory": "'bits' (average) or 'kib'", "bops": "'bops'", "latency": "'latency'"}
_COLUMN = {"memory": "weight_bits", "bops": "bops", "latency": "latency"}


def _in_primary_units(key: str, value: float, total_params: float) -> float:
    if key == "bits":
        return value * total_params
    if key == "kib":
        return value * 8192
    return value


def _describe(primary: str, value: float, total_params: float) -> str:
    if primary == "memory":
        return f"{value / total_params:g} average bits ({value / 8192:.2f} KiB)"
    return f"{value:g} {'BOPs' if primary == 'bops' else 'latency'}"


def _check_table(table, name: str, value: str) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a DataFrame with columns layer, w_bits, a_bits, {value}; got "
                        f"{type(table).__name__}")
    missing = [c for c in ("layer", "w_bits", "a_bits", value) if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; it needs layer, w_bits, a_bits, {value}")
    vals = table[value].to_numpy(dtype=float)
    if not np.isfinite(vals).all():
        raise ValueError(f"{name}: column {value!r} holds NaN or infinite values")
    for col in ("w_bits", "a_bits"):
        for b in pd.unique(table[col]):
            check_bits(int(b) if float(b).is_integer() else b, f"{name}.{col}")
    return table


def pareto_front(model: nn.Module, loss: pd.DataFrame, primary: str = "memory", budget=None,
                 monotone: bool = False, allowed: Mapping | None = None, latency: pd.DataFrame | None = None,
                 weight_mode: str = "dorefa", act_mode: str = "dorefa", example_input=None,
                 _single: bool = False) -> Front:
    """The exact Pareto front of predicted loss against the ``primary`` cost (see the module docstring).

    Args:
        model: the model (its weights' sizes, MACs per sample and which inputs
            can be quantized).
        loss: one row per allowed choice: ``layer``, ``w_bits``, ``a_bits``,
            ``loss`` (``predicted_loss`` makes one from any metric). Layers
            without rows are not allocated (they stay as the table has them: 32
            bits, counted in the memory and BOPs).
        primary: the cost on the front's horizontal axis.
        budget: limits (see ``parse_budgets``); those on other costs than
            ``primary`` constrain the front, the one on ``primary`` is where
            ``Front.choose()`` picks.
        monotone: weight bits never increase in forward order.
        allowed: ``{layer: [w, ...] or [(w, a), ...]}`` to restrict some layers' choices.
        latency: ``layer``, ``w_bits``, ``a_bits``, ``latency`` for every allowed choice.
        weight_mode, act_mode: the quantizers of the schedules the front gives.
        example_input: one batch, for models without ``pdbviz_info`` (MACs).

    Example:
        >>> net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
        >>> loss = pd.DataFrame({"layer": ["0", "0", "1", "1"], "w_bits": [1, 8, 1, 8], "a_bits": 32,
        ...                      "loss": [1.0, 0.0, 0.5, 0.0]})
        >>> pareto_front(net, loss).table[["avg_bits", "loss"]].values.tolist()
        [[1.0, 1.5], [4.5, 0.5], [8.0, 0.0]]
    """
    if primary not in PRIMARY:
        raise ValueError(f"primary must be one of {PRIMARY}, got {primary!r}")
    loss = _check_table(loss, "loss", "loss")
    if latency is not None:
        latency = _check_table(latency, "latency", "latency")
    limits = parse_budgets(budget)
    if primary == "latency" and latency is None:
        raise ValueError("primary='latency' needs a latency table (layer, w_bits, a_bits, latency)")
    layout = discover(model, example_input)
    prob = build_problem(layout, loss, allowed, latency, limits, primary, _single)
    idx = _dp(prob, monotone, _single)
    table = prob.table(idx)
    return Front(table, tuple(prob.layers), primary, limits, weight_mode, act_mode, prob.total_params)


def allocate(model: nn.Module, loss: pd.DataFrame, budget, primary: str | None = None, monotone: bool = False,
             allowed: Mapping | None = None, latency: pd.DataFrame | None = None, weight_mode: str = "dorefa",
             act_mode: str = "dorefa", example_input=None) -> BitSchedule:
    """The schedule with the least predicted loss that meets every budget: ``pareto_front(...).choose()``.

    ``primary`` defaults to memory when the budget limits it, else BOPs, else
    latency. Only what can lead to the best point within the budget is computed
    (branch and bound on the front's dynamic programme, exact).

    Example:
        >>> net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
        >>> loss = pd.DataFrame({"layer": ["0", "0", "1", "1"], "w_bits": [1, 8, 1, 8], "a_bits": 32,
        ...                      "loss": [1.0, 0.0, 0.5, 0.0]})
        >>> allocate(net, loss, 4.5).w_bits
        [8, 1]
    """
    limits = parse_budgets(budget)
    if not limits:
        raise ValueError(f"budget must limit memory, BOPs or latency, got {budget!r}")
    if primary is None:
        resources = {RESOURCE[k] for k in limits}
        primary = next(p for p in PRIMARY if p in resources)
    front = pareto_front(model, loss, primary, limits, monotone, allowed, latency, weight_mode, act_mode,
                         example_input, _single=True)
    return front.choose()


def _dp(prob, monotone: bool, single: bool = False) -> np.ndarray:
    """Choice indices (points x layers) of the exact front of ``prob`` (a ``_choices.Problem``); with ``single``,
    of a front that holds at least the least-loss point within every budget."""
    L = len(prob.layers)
    R = prob.n_resources
    limits, rest = prob.limits, prob.min_rest
    cost = np.zeros((1, R))
    loss = np.zeros(1)
    last = np.full(1, np.inf)
    parents, picks = [], []
    usefuls = [_useful_choices(prob.costs[l], prob.losses[l], prob.wbits[l], monotone) for l in range(L)]
    bounds = None
    if R > 1:
        bounds = Bounds([prob.costs[l][u] for l, u in enumerate(usefuls)],
                        [prob.losses[l][u] for l, u in enumerate(usefuls)],
                        [prob.wbits[l][u] for l, u in enumerate(usefuls)], limits, monotone, nondominated)
    for l in range(L):
        useful = usefuls[l]
        c_cost, c_loss, c_w = prob.costs[l][useful], prob.losses[l][useful], prob.wbits[l][useful]
        s, k = np.meshgrid(np.arange(len(loss)), np.arange(len(c_loss)), indexing="ij")
        s, k = s.ravel(), k.ravel()
        if monotone:
            ok = c_w[k] <= last[s]
            s, k = s[ok], k[ok]
            if not len(s):
                raise ValueError(f"no allocation has non-increasing weight bits with the allowed choices: layer "
                                 f"{prob.layers[l]!r} allows only {sorted(set(c_w.astype(int).tolist()))} after "
                                 f"smaller bit-widths before it; use monotone=False or allow smaller bit-widths")
        new_cost = cost[s] + c_cost[k]
        new_loss = loss[s] + c_loss[k]
        feasible = np.all(new_cost + rest[l + 1] <= limits, axis=1)
        s, k, new_cost, new_loss = s[feasible], k[feasible], new_cost[feasible], new_loss[feasible]
        if not len(s):
            raise ValueError(prob.infeasible_message())
        if bounds is not None:
            ok = bounds.keep(l, new_cost, new_loss, single)
            s, k, new_cost, new_loss = s[ok], k[ok], new_cost[ok], new_loss[ok]
        groups = c_w[k] if monotone else np.zeros(len(k))
        keep = []
        for g in np.unique(groups):
            members = np.flatnonzero(groups == g)
            pts = np.column_stack([new_cost[members], new_loss[members]])
            keep.append(members[nondominated(pts)])
        keep = np.concatenate(keep)
        cost, loss, last = new_cost[keep], new_loss[keep], c_w[k[keep]].astype(float)
        parents.append(s[keep])
        picks.append(useful[k[keep]])
    final = nondominated(np.column_stack([cost[:, 0], loss]))
    out = np.empty((len(final), L), dtype=np.int64)
    idx = final
    for l in range(L - 1, -1, -1):
        out[:, l] = picks[l][idx]
        idx = parents[l][idx]
    return out


def _useful_choices(cost: np.ndarray, loss: np.ndarray, w: np.ndarray, monotone: bool) -> np.ndarray:
    """A layer's choices that no other choice (with the same weight bits, when monotone) beats in every cost and
    the loss: the others can never be part of a front point."""
    groups = w if monotone else np.zeros(len(w))
    keep = [members[nondominated(np.column_stack([cost[members], loss[members]]))]
            for g in np.unique(groups) for members in [np.flatnonzero(groups == g)]]
    return np.sort(np.concatenate(keep))


# -- the non-dominated filter ----------------------------------------------------------------------------------
_LEAF = 64


def nondominated(points: np.ndarray) -> np.ndarray:
    """Indices (ascending in the lexicographic order of the points) of the non-dominated rows of ``points``.

    Example:
        >>> nondominated(np.array([[1.0, 5.0], [2.0, 3.0], [2.0, 4.0], [3.0, 3.0], [1.0, 5.0]])).tolist()
        [0, 1]
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n_points, n_coordinates), got shape {pts.shape}")
    n, d = pts.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(pts.T[::-1])
    p = pts[order]
    if d == 1:
        return order[:1]
    if d == 2:
        best = np.minimum.accumulate(p[:, 1])
        keep = np.ones(n, dtype=bool)
        keep[1:] = p[1:, 1] < best[:-1]
        return order[keep]
    if d == 3:
        dominated = np.zeros(n, dtype=bool)
        _cdq(p[:, 1], p[:, 2], 0, n, dominated)
        return order[~dominated]
    return order[_blocks(p[:, 1:])]


def _cdq(b: np.ndarray, f: np.ndarray, lo: int, hi: int, out: np.ndarray) -> None:
    """Mark in ``out`` each ``i`` in ``[lo, hi)`` with an earlier ``j`` such that ``b_j <= b_i`` and ``f_j <= f_i``."""
    if hi - lo <= _LEAF:
        bb, ff = b[lo:hi], f[lo:hi]
        m = (bb[None, :] <= bb[:, None]) & (ff[None, :] <= ff[:, None])
        out[lo:hi] |= np.tril(m, -1).any(1)
        return
    mid = (lo + hi) // 2
    _cdq(b, f, lo, mid, out)
    _cdq(b, f, mid, hi, out)
    left = np.argsort(b[lo:mid], kind="stable")
    bs, fmin = b[lo:mid][left], np.minimum.accumulate(f[lo:mid][left])
    pos = np.searchsorted(bs, b[mid:hi], side="right") - 1
    out[mid:hi] |= (pos >= 0) & (fmin[np.maximum(pos, 0)] <= f[mid:hi])


def _blocks(q: np.ndarray, block: int = 256) -> np.ndarray:
    """Keep-mask of rows of ``q`` (in order) that no earlier row is <= in every coordinate."""
    n = len(q)
    keep = np.zeros(n, dtype=bool)
    kept = np.zeros((0, q.shape[1]))
    for lo in range(0, n, block):
        chunk = q[lo:lo + block]
        dom = (kept[None, :, :] <= chunk[:, None, :]).all(2).any(1) if len(kept) else np.zeros(len(chunk), bool)
        inner = (chunk[None, :, :] <= chunk[:, None, :]).all(2)
        dom |= np.tril(inner, -1).any(1)
        keep[lo:lo + block] = ~dom
        kept = np.concatenate([kept, chunk[~dom]])
    return keep
