"""Spearman's rank correlation of predicted loss with measured accuracy drop, and its bootstrap interval.

``rho = cov(rank(L), rank(D)) / (std(rank(L)) std(rank(D)))`` (Spearman 1904), ties given their average rank; the
interval is a bootstrap (Efron & Tibshirani 1993) over seeds and the test set's binomial sampling (see
``pdbviz.study``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .._checks import NON_NEGATIVE_INT, Real, validate

#: columns of ``MetricStudy.correlation``.
CORRELATION_COLUMNS = ["metric", "spearman", "ci_low", "ci_high", "seed_mean", "seed_std", "n_runs", "n_seeds"]


def spearman(x, y) -> float:
    """Spearman's rank correlation of two equally long sequences: Pearson's on average ranks.

    NaN when either sequence has fewer than two distinct values (no ranking to compare).

    Example:
        >>> round(spearman([0.1, 0.5, 0.2, 0.9], [1.0, 3.0, 2.0, 2.5]), 6)
        0.8
    """
    x = pd.Series(np.asarray(x, dtype=float)).rank().to_numpy()
    y = pd.Series(np.asarray(y, dtype=float)).rank().to_numpy()
    if len(x) != len(y):
        raise ValueError(f"x and y must have one length, got {len(x)} and {len(y)}")
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


_LEVEL = Real(0, 1, low_open=True, high_open=True)


def rank_correlation(runs: pd.DataFrame, n_test: int | None = None, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> pd.DataFrame:
    """Per metric: Spearman's rho between predicted loss and measured accuracy drop, with its interval.

    Args:
        runs: ``MetricStudy.runs`` (rows of ``family == "metric"`` are used:
            ``method``, ``seed``, ``predicted_loss``, ``test_acc``, ``float_acc``).
        n_test: test-set size, for the binomial part of the bootstrap (None: seeds only).
        n_boot: bootstrap resamples (0: no interval).
        seed: seed of the bootstrap.
        level: coverage of the percentile interval.

    Returns:
        One row per metric (``CORRELATION_COLUMNS``): ``spearman`` over all
        the metric's runs, ``ci_low``/``ci_high`` (bootstrap percentiles),
        ``seed_mean``/``seed_std`` of the per-seed correlations, ``n_runs``,
        ``n_seeds``. Higher is better (see ``pdbviz.study``).

    Example:
        >>> runs = pd.DataFrame({"method": "m", "family": "metric", "seed": [0, 0, 0, 1, 1, 1],
        ...                      "predicted_loss": [3.0, 2.0, 1.0, 3.1, 2.2, 0.9], "float_acc": 99.0,
        ...                      "test_acc": [90.0, 95.0, 98.0, 91.0, 96.0, 97.0], "error": ""})
        >>> rank_correlation(runs, n_boot=0)[["metric", "spearman", "seed_mean"]].round(3).values.tolist()
        [['m', 0.829, 1.0]]
    """
    validate("level", level, _LEVEL)
    n_boot = validate("n_boot", n_boot, NON_NEGATIVE_INT)
    ok = runs[(runs.family == "metric") & (runs.error.fillna("") == "") & np.isfinite(runs.test_acc.astype(float))]
    rng = np.random.default_rng(seed)
    rows = []
    for metric, df in ok.groupby("method", sort=False):
        drop = (df.float_acc - df.test_acc).to_numpy(float)
        rho = spearman(df.predicted_loss, drop)
        per_seed = [spearman(g.predicted_loss, g.float_acc - g.test_acc) for _, g in df.groupby("seed")]
        per_seed = [r for r in per_seed if np.isfinite(r)]
        low = high = math.nan
        if n_boot:
            boot = _bootstrap(df, n_test, n_boot, rng)
            if len(boot):
                low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
        rows.append({"metric": metric, "spearman": rho, "ci_low": float(low), "ci_high": float(high),
                     "seed_mean": float(np.mean(per_seed)) if per_seed else math.nan,
                     "seed_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else math.nan,
                     "n_runs": len(df), "n_seeds": df.seed.nunique()})
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def _bootstrap(df: pd.DataFrame, n_test: int | None, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` values of rho: seeds drawn with replacement, accuracies redrawn from their binomial."""
    groups = [(g.predicted_loss.to_numpy(float), g.test_acc.to_numpy(float) / 100, float(g.float_acc.iloc[0]) / 100)
              for _, g in df.groupby("seed")]
    out = []
    for _ in range(n_boot):
        loss, drop = [], []
        for i in rng.integers(0, len(groups), len(groups)):
            pl, acc, flt = groups[i]
            if n_test:
                acc = rng.binomial(n_test, np.clip(acc, 0, 1)) / n_test
                flt = rng.binomial(n_test, min(max(flt, 0.0), 1.0)) / n_test
            loss.append(pl)
            drop.append(flt - acc)
        rho = spearman(np.concatenate(loss), np.concatenate(drop))
        if np.isfinite(rho):
            out.append(rho)
    return np.asarray(out)
