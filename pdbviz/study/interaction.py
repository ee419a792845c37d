"""The interaction-aware allocation against the additive one at equal budget, as ``metric_study`` measures it.

Per seed, ``analysis.interactions`` measures the pairwise interactions of
quantizing two layers of the float model at 2 bits; at every budget the
interaction-aware allocation (``analysis.allocate_with_interactions``: the
point of the first metric's exact front within the budget with the least
interaction-corrected loss) is set against that metric's additive choice.
Where both choose the same bits on every seed the comparison is ``"same"``;
otherwise both are fine-tuned and their accuracy difference (aware minus
additive, points) is the paired seeds x images estimate of
``pdbviz.stats.paired_difference`` on the runs' per-image correctness
(a seed where both chose the same bits contributes a difference of 0), with
its 95% interval, minimum detectable effect and the seeds or test images that
would detect the observed difference at 80% power.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..stats import decode_correct, paired_difference

#: columns of ``MetricStudy.interaction``.
INTERACTION_COLUMNS = ["metric", "budget", "status", "w_bits_additive", "w_bits_aware", "n_seeds", "n_same",
                       "estimate", "low", "high", "se", "df", "mde", "seeds_needed", "images_needed", "method"]


def interaction_summary(pairs: Sequence[dict]) -> pd.DataFrame:
    """One row per metric and budget (``INTERACTION_COLUMNS``) from per-seed pairs of allocations.

    Each pair is ``{"metric", "budget", "seed", "additive", "aware"}`` (the
    two schedules' weight bits, dash-joined) with ``"correct_additive"`` and
    ``"correct_aware"`` (``encode_correct`` texts of their fine-tuned runs;
    ``""`` when a run failed). ``w_bits_*`` are those of the first seed where
    the two differ (of the first seed when they never do).

    Example:
        >>> from pdbviz.stats import encode_correct
        >>> same = {"metric": "hawq", "budget": 2.0, "seed": 0, "additive": "2-2", "aware": "2-2",
        ...         "correct_additive": "", "correct_aware": ""}
        >>> diff = [{"metric": "hawq", "budget": 3.0, "seed": s, "additive": "4-2", "aware": "2-4",
        ...          "correct_additive": encode_correct([1, 0, 1, 0]), "correct_aware": encode_correct([1, 1, 1, 0])}
        ...         for s in (0, 1)]
        >>> t = interaction_summary([same, *diff])
        >>> t.status.tolist(), t.estimate.tolist()[1]
        (['same', 'compared'], 25.0)
    """
    rows = []
    frame = pd.DataFrame(list(pairs))
    if frame.empty:
        return pd.DataFrame(columns=INTERACTION_COLUMNS)
    for (metric, budget), df in frame.groupby(["metric", "budget"], sort=False):
        same = df.additive == df.aware
        row = dict.fromkeys(INTERACTION_COLUMNS, math.nan)
        shown = df[~same].iloc[0] if not same.all() else df.iloc[0]
        row.update(metric=metric, budget=float(budget), w_bits_additive=shown.additive, w_bits_aware=shown.aware,
                   n_seeds=len(df), n_same=int(same.sum()), method="")
        if same.all():
            row["status"] = "same"
            rows.append(row)
            continue
        aware, additive = [], []
        for r in df.itertuples():
            a, b = decode_correct(r.correct_aware), decode_correct(r.correct_additive)
            if r.additive == r.aware and b is not None:
                a = b  # the same schedule, trained once: no difference on any image
            if a is None or b is None or len(a) != len(b) or (aware and len(a) != len(aware[0])):
                continue
            aware.append(a)
            additive.append(b)
        if len(aware) == 0 or len(aware[0]) < 2:
            row["status"] = "not measured"
            rows.append(row)
            continue
        e = paired_difference(np.vstack(aware), np.vstack(additive))
        need = e.needed(e.estimate)
        row.update(status="compared", n_seeds=len(aware), estimate=e.estimate, low=e.low, high=e.high, se=e.se,
                   df=e.df, mde=e.mde(), seeds_needed=need["seeds"], images_needed=need["images"], method=e.method)
        rows.append(row)
    out = pd.DataFrame(rows, columns=INTERACTION_COLUMNS)
    for col in ("seeds_needed", "images_needed"):
        out[col] = out[col].astype("Int64")
    return out


def interaction_text(table: pd.DataFrame) -> str:
    """One line per metric and budget: ``same``, or the difference with its interval and power.

    Example:
        >>> t = pd.DataFrame([{"metric": "hawq", "budget": 2.0, "status": "same", "w_bits_additive": "2-2",
        ...                    "w_bits_aware": "2-2"}])
        >>> interaction_text(t)
        'hawq @ 2 bits: same allocation (2-2) with and without interactions'
    """
    lines = []
    for r in table.to_dict("records"):
        head = f"{r['metric']} @ {r['budget']:g} bits"
        if r["status"] == "same":
            lines.append(f"{head}: same allocation ({r['w_bits_additive']}) with and without interactions")
        elif r["status"] == "compared":
            lines.append(f"{head}: interaction-aware {r['w_bits_aware']} minus additive {r['w_bits_additive']}: "
                         f"{r['estimate']:+.2f} points, 95% CI [{r['low']:+.2f}, {r['high']:+.2f}]; detects "
                         f"{r['mde']:.2f} points (80% power); the same bits on {r['n_same']} of "
                         f"{r['n_seeds']} seeds")
        else:
            lines.append(f"{head}: not measured (a run failed)")
    return "\n".join(lines)
