"""Non-dominated filters: which points of a set no other point beats in every coordinate.

A point ``j`` dominates ``i`` when it is no larger in every coordinate; of
identical points the first is kept. Points are sorted lexicographically, so
that any point that dominates another comes before it; then a point is kept
when no earlier point dominates it:

* two coordinates: a running minimum of the second (``O(n log n)``);
* three: divide and conquer on the order (CDQ), each half's points that
  dominate the other's found with a prefix minimum and a binary search
  (``O(n log^2 n)``, vectorised);
* more: blocks of pairwise comparisons against the points kept so far.
"""

from __future__ import annotations

import numpy as np

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
