"""Axis ranges, equal series and legend placement shared by the figures: nothing hidden, nothing off the data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def log_ticks(low: float, high: float) -> tuple[list[float], list[str]]:
    """Tick values 1, 2, 5, 10, 20, 50... covering ``[low, high]``, written in full (no ``2, 5, 10, 2, 5``).

    Example:
        >>> log_ticks(3, 40)
        ([2.0, 5.0, 10.0, 20.0, 50.0], ['2', '5', '10', '20', '50'])
        >>> log_ticks(10, 40)[1]
        ['10', '20', '30', '50']
    """
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0:
        return [], []
    decades = np.log10(high / low)
    mantissas = (1, 2, 3, 5) if decades < 1 else (1, 2, 5) if decades < 3 else (1,)
    values = []
    for exponent in range(int(np.floor(np.log10(low))) - 1, int(np.ceil(np.log10(high))) + 1):
        values += [m * 10.0**exponent for m in mantissas]
    below = [v for v in values if v <= low]
    above = [v for v in values if v >= high]
    keep = [v for v in values if (below and v >= below[-1]) and (above and v <= above[0])]
    return keep, [f"{v:g}" for v in keep]


def log_range(low: float, high: float) -> tuple[list[float], list[float], list[str]]:
    """A log axis that covers ``[low, high]``: its range (log10, a tick at or beyond each end plus a little
    air, so no marker sits on the frame) and its ticks, written in full.

    Example:
        >>> r, ticks, text = log_range(9.9, 39.6)
        >>> text, 10 ** r[0] < 9.9 and 10 ** r[1] > 39.6
        (['8', '10', '20', '30', '40'], True)
    """

    ticks, _ = log_ticks(low, high)
    if not ticks:
        return [], [], []
    if np.log10(high / low) < 1:  # within a decade: ends at 1-8 of a decade, so the axis is not mostly empty
        fine = [m * 10.0**e for e in range(int(np.floor(np.log10(low))) - 1, int(np.ceil(np.log10(high))) + 1)
                for m in (1, 2, 3, 4, 5, 6, 8)]
        lo, hi = max(v for v in fine if v <= low), min(v for v in fine if v >= high)
        ticks = sorted({lo, hi, *(v for v in ticks if lo < v < hi)})
    lo, hi = ticks[0], ticks[-1]
    air = 0.03 * (np.log10(hi) - np.log10(lo))
    return [float(np.log10(lo) - air), float(np.log10(hi) + air)], ticks, [f"{v:g}" for v in ticks]


def same_as(series: Mapping[str, Sequence[float]], tol: float = 1e-9) -> dict[str, str]:
    """For each series equal to an earlier one (same length, every value within ``tol``), the earlier one's
    name: a figure labels it ("= 8-4-2-1") and draws it so that both stay visible.

    Example:
        >>> same_as({"8-4-2-1": [1.0, 2.0], "allocated": [1.0, 2.0], "1-bit": [0.5, 2.0]})
        {'allocated': '8-4-2-1'}
    """
    out: dict[str, str] = {}
    names = list(series)
    for i, name in enumerate(names):
        a = np.asarray(series[name], dtype=float)
        for earlier in names[:i]:
            b = np.asarray(series[earlier], dtype=float)
            if earlier not in out and a.shape == b.shape and np.allclose(a, b, atol=tol, rtol=0, equal_nan=True):
                out[name] = earlier
                break
    return out


#: the dash of a line drawn over an equal one, so that the one under it shows through its gaps
_OVER = "dash"

def _legend_below(fig, rows: int | None = None):
    """A horizontal legend under the plot area, clear of the x axis's tick labels and title."""
    height = fig.layout.height or 380
    margin = fig.layout.margin
    plot_h = height - (margin.t or 50) - (margin.b or 50)
    items = [tr for tr in fig.data if tr.showlegend is not False and tr.name]
    rows = rows or -(-len(items) // 2)
    extra = 22 * rows + 10
    fig.update_layout(height=height + extra, margin={"b": (margin.b or 50) + extra},
                      legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -58 / plot_h, "yanchor": "top"},
                      meta={**(fig.layout.meta or {}), "legend_height": extra})
    return fig
