"""Lagrangian bounds that let the front's dynamic programme drop partial allocations early under budgets.

Under a budget ``B`` on a secondary cost ``b`` (BOPs, latency, or memory
when it is not the primary), the states of the dynamic programme carry that
cost too, and far more of them are mutually non-dominated. Most cannot lead
to a front point; these bounds find them without losing exactness.

For ``lambda >= 0``, let ``R_l(C)`` be the least ``loss + lambda b`` of the
layers ``l..L-1`` at primary cost at most ``C`` (a backward dynamic programme
without the budget; a staircase in ``C``). Any completion of a state
``(c, b, f)`` that meets the budget (``b' <= B - b``) with primary cost ``c' <=
C`` has loss ``f' >= R_l(C) - lambda (B - b)`` (weak duality). The backward
programmes also yield complete allocations; those that meet every budget are
*incumbents*, ``I(x)`` the least loss among them at primary cost at most ``x``.
A state is dropped when, for every range of completion costs ``[G_a,
G_a+1)``, an incumbent at cost at most ``c + G_a`` has a loss *strictly* below
the bound ``f + max_lambda (R_l(G_a+1) - lambda (B - b))`` (by more than
a relative 1e-9, so that rounding cannot make an allocation beat itself): then every
allocation through it is beaten by an incumbent, so it is no front point,
while the states of every front point survive (a strict inequality cannot
hold for them). When only the front below a budget on the primary cost is
wanted, completions beyond it count as beaten too; when only its least loss
is (``allocate``), a state is dropped as soon as the bound at the primary
cost left, ``f + max_lambda (R_l(cap - c) - lambda (B - b))``, is strictly
above the best incumbent within every budget (branch and bound).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_FACTORS = (1 / 4, 1.0, 4.0)
_BLOCKS = 16
_CHUNK = 100_000
_REL = 1e-9  # an incumbent must beat the bound by more than rounding: sums in another order differ in the last bits


class Bounds:
    """The staircases ``R_l`` for a few ``lambda`` per budget, and the incumbents (see the module docstring)."""

    def __init__(self, costs: list, losses: list, wbits: list, limits: np.ndarray, monotone: bool,
                 nondominated: Callable[[np.ndarray], np.ndarray]):
        self.L = len(costs)
        self.cap, self.limits = limits[0], limits[1:]
        self.lambdas = _lambdas(costs, losses, self.limits)
        self.fronts = []  # per lambda: L + 1 staircases (costs ascending, values descending)
        inc_c, inc_f = [], []
        for lam in self.lambdas:
            fronts, complete = _backward(costs, losses, wbits, lam, limits, monotone, nondominated)
            self.fronts.append(fronts)
            inc_c.append(complete[0])
            inc_f.append(complete[1])
        c, f = np.concatenate(inc_c), np.concatenate(inc_f)
        keep = nondominated(np.column_stack([c, f])) if len(c) else np.zeros(0, dtype=np.int64)
        self.inc_cost, self.inc_loss = c[keep], f[keep]
        self.grids = [self._grid(l) for l in range(self.L + 1)]

    def _grid(self, l: int) -> tuple[np.ndarray, np.ndarray]:
        """Block starts ``G`` of the completion costs of layers ``l..`` and, per lambda and block, the bound
        ``R_l`` at the next block's start (at infinity for the last block)."""
        costs = np.unique(np.concatenate([f[l][0] for f in self.fronts]))
        if len(costs) > _BLOCKS:
            costs = np.unique(costs[np.linspace(0, len(costs) - 1, _BLOCKS).round().astype(int)])
        nxt = np.append(costs[1:], np.inf)
        vals = np.stack([_staircase(f[l], nxt) for f in self.fronts])  # (lambdas, blocks)
        return costs, vals

    def keep(self, l: int, cost: np.ndarray, loss: np.ndarray, single: bool = False) -> np.ndarray:
        """Which states after layer ``l`` (costs ``(n, R)``, losses ``(n,)``) may still lead to a front point
        (``single``: to the least loss within every budget, the primary's included)."""
        if not len(self.inc_cost):
            return np.ones(len(loss), dtype=bool)
        starts, vals = self.grids[l + 1]
        lam = np.array(self.lambdas)  # (lambdas, R - 1)
        out = np.empty(len(loss), dtype=bool)
        within = self.inc_loss[self.inc_cost <= self.cap]
        best_within = within.min() if len(within) else np.inf
        for lo in range(0, len(loss), _CHUNK):
            c, b, f = cost[lo:lo + _CHUNK, 0], cost[lo:lo + _CHUNK, 1:], loss[lo:lo + _CHUNK]
            slack = (self.limits[None, :] - b) @ lam.T  # (n, lambdas): lambda (B - b)
            if single:
                room = np.stack([_staircase(fr[l + 1], self.cap - c) for fr in self.fronts], 1)  # (n, lambdas)
                bound = f + (room - slack).max(1)
                out[lo:lo + _CHUNK] = ~(best_within < bound - _REL * np.abs(bound))
                continue
            bound = f[:, None] + (vals[None, :, :] - slack[:, :, None]).max(1)  # (n, blocks)
            pos = np.searchsorted(self.inc_cost, c[:, None] + starts[None, :], side="right") - 1
            best = np.where(pos >= 0, self.inc_loss[np.maximum(pos, 0)], np.inf)
            beaten = (best < bound - _REL * np.abs(bound)) | (c[:, None] + starts[None, :] > self.cap)
            out[lo:lo + _CHUNK] = ~beaten.all(1)
        return out


def _staircase(front: tuple[np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The least value of ``front`` at cost at most ``x`` (infinite where there is none)."""
    costs, values = front
    pos = np.searchsorted(costs, x, side="right") - 1
    return np.where(pos >= 0, values[np.maximum(pos, 0)], np.inf)


def _lambdas(costs: list, losses: list, limits: np.ndarray) -> list[np.ndarray]:
    """A few multipliers per budget around the ratio of the loss's spread to that cost's spread."""
    spread_f = sum(float(np.ptp(f)) for f in losses) or 1.0
    out = [np.zeros(len(limits))]
    for r in range(len(limits)):
        spread_b = sum(float(np.ptp(c[:, 1 + r])) for c in costs) or 1.0
        for factor in _FACTORS:
            lam = np.zeros(len(limits))
            lam[r] = factor * spread_f / spread_b
            out.append(lam)
    return out


def _backward(costs, losses, wbits, lam, limits, monotone, nondominated):
    """Staircases of ``loss + lam . b`` against the primary cost for every suffix of the layers, and the complete
    allocations found that meet every budget, as ``(primary costs, losses)``."""
    L = len(costs)
    R = costs[0].shape[1] if L else 1
    c = np.zeros(1)
    v = np.zeros(1)
    b = np.zeros((1, R - 1))
    f = np.zeros(1)
    first = np.full(1, -np.inf)
    fronts = [None] * (L + 1)
    fronts[L] = (np.zeros(1), np.zeros(1))
    for l in range(L - 1, -1, -1):
        cc, ff, ww = costs[l], losses[l], wbits[l]
        s, k = (a.ravel() for a in np.meshgrid(np.arange(len(v)), np.arange(len(ff)), indexing="ij"))
        if monotone:
            ok = ww[k] >= first[s]
            s, k = s[ok], k[ok]
        nb = b[s] + cc[k, 1:]  # no pruning by budget here: it would fight the dominance in (c, v) alone
        nc, nf = c[s] + cc[k, 0], f[s] + ff[k]
        nv = nf + nb @ lam
        groups = ww[k] if monotone else np.zeros(len(k))
        keep = np.concatenate([members[nondominated(np.column_stack([nc[members], nv[members]]))]
                               for g in np.unique(groups) for members in [np.flatnonzero(groups == g)]]) \
            if len(k) else np.zeros(0, dtype=np.int64)
        c, v, b, f, first = nc[keep], nv[keep], nb[keep], nf[keep], ww[k[keep]].astype(float)
        stair = nondominated(np.column_stack([c, v])) if len(c) else np.zeros(0, dtype=np.int64)
        fronts[l] = (c[stair], v[stair]) if len(stair) else (np.array([np.inf]), np.array([np.inf]))
    feasible = np.all(b <= limits[1:], axis=1) if len(b) else np.zeros(0, dtype=bool)
    return fronts, (c[feasible], f[feasible])
