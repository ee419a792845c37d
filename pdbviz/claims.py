"""The paper's claims, evaluated on a comparison's own runs, with their uncertainty.

Claims (Chu et al. 2021, and the controls a reviewer asks for):

(i)   a decreasing schedule with at least 25% less quantized-weight memory than
      the best homogeneous schedule is as accurate as it: the decreasing
      schedule against the *frontier* of homogeneous schedules (every mode,
      every k in the run) at 1/0.75 of its memory;
(ii)  more bits in the bottom layers beat pure 1-bit: 8-4-2-1 against uniform 1-bit;
(iii) decreasing beats its increasing mirror: 8-4-2-1 against increasing 1→8
      (their memories are reported beside the verdict);
(iv)  the separability allocator beats 8-4-2-1 at equal memory: the schedule
      allocated at 8-4-2-1's memory against 8-4-2-1.

The effect is a difference of mean test accuracies (percentage points). Its
uncertainty combines the spread over seeds (paired by seed: both schedules
start from the same float model) and the test set's own sampling error, a
binomial ``p (1 - p) / n`` for each of the two accuracies (a 450-image test set
resolves about 0.2 points per image)::

    SE^2 = var_seeds(effect) / seeds + p1 (1 - p1) / n + p2 (1 - p2) / n
    95% CI = effect ± 1.96 SE

Verdicts: a claim that one schedule *beats* another holds when the whole
interval lies above 0 and does not hold when it lies below 0; an *as accurate*
claim holds when the interval lies above ``-margin`` (0.5 points by default)
and does not hold when it lies below it. Anything else is *within noise*.
A claim whose schedules the comparison did not run is *not measured*.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: the verdicts a claim can get.
VERDICTS = ("holds", "within noise", "does not hold", "not measured")
#: the columns of the claims table.
COLUMNS = ["claim", "statement", "schedule", "baseline", "effect", "seed_std", "ci_low", "ci_high", "verdict",
           "note"]
#: the memory saving of claim (i): the decreasing schedule against homogeneous ones with 1/0.75 of its memory.
MEMORY_SAVING = 0.25


def _paired(runs: pd.DataFrame, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    ok = runs[runs.error.fillna("") == ""]
    ra = ok[ok.schedule == a].set_index("seed").test_acc
    rb = ok[ok.schedule == b].set_index("seed").test_acc
    seeds = sorted(set(ra.index) & set(rb.index))
    return ra.loc[seeds].to_numpy(float), rb.loc[seeds].to_numpy(float)


def compare_schedules(runs: pd.DataFrame, schedule: str, baseline: str, n_test: int | None,
                      z: float = 1.96) -> dict:
    """Effect (points), seed spread and confidence interval of ``schedule`` minus ``baseline``.

    Example:
        >>> runs = pd.DataFrame({"schedule": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2,
        ...                      "test_acc": [98.0, 98.4, 98.2, 97.0, 97.2, 97.1], "error": ""})
        >>> r = compare_schedules(runs, "a", "b", n_test=450)
        >>> round(r["effect"], 2), round(r["ci_low"], 2), round(r["ci_high"], 2)
        (1.1, -0.88, 3.08)

        On 450 test images the 1.1 points are within noise; on 10,000 they are not:

        >>> compare_schedules(runs, "a", "b", n_test=10_000)["ci_low"] > 0
        True
    """
    a, b = _paired(runs, schedule, baseline)
    if len(a) == 0:
        return {"effect": math.nan, "seed_std": math.nan, "ci_low": math.nan, "ci_high": math.nan, "seeds": 0}
    diff = a - b
    effect = float(diff.mean())
    seed_var = float(diff.var(ddof=1)) if len(diff) > 1 else 0.0
    var = seed_var / len(diff)
    if n_test:
        for p in (a.mean() / 100, b.mean() / 100):
            var += 1e4 * p * (1 - p) / n_test  # in points squared
    se = math.sqrt(var)
    return {"effect": effect, "seed_std": math.sqrt(seed_var), "ci_low": effect - z * se, "ci_high": effect + z * se,
            "seeds": len(diff)}


def verdict(ci_low: float, ci_high: float, kind: str, margin: float = 0.5) -> str:
    """``holds`` / ``within noise`` / ``does not hold`` for a ``"beats"`` or an ``"as accurate"`` claim."""
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return "not measured"
    floor = 0.0 if kind == "beats" else -margin
    if ci_low > floor:
        return "holds"
    if ci_high < floor:
        return "does not hold"
    return "within noise"


def _label(table: pd.DataFrame, entries: dict, entry: str) -> str | None:
    for label, given in entries.items():
        if given == entry and label in set(table.schedule):
            return label
    return None


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    return table[(table.error.fillna("") == "") & np.isfinite(table.acc_mean.astype(float))]


def evaluate_claims(table: pd.DataFrame, runs: pd.DataFrame, entries: dict, n_test: int | None,
                    margin: float = 0.5) -> pd.DataFrame:
    """The four claims of the module docstring, one row each (see ``COLUMNS``)."""
    ok = _ok(table).set_index("schedule")
    halving = _label(table, entries, "halving")
    rows = []

    def add(claim, statement, schedule, baseline, kind, note=""):
        if schedule is None or baseline is None or schedule not in ok.index or baseline not in ok.index:
            rows.append({"claim": claim, "statement": statement, "schedule": schedule or "-",
                         "baseline": baseline or "-", "effect": math.nan, "seed_std": math.nan, "ci_low": math.nan,
                         "ci_high": math.nan, "verdict": "not measured", "note": note or "schedules not in the run"})
            return
        r = compare_schedules(runs, schedule, baseline, n_test)
        mem = f"{ok.kib[schedule]:.2f} vs {ok.kib[baseline]:.2f} KiB"
        rows.append({"claim": claim, "statement": statement, "schedule": schedule, "baseline": baseline,
                     "effect": r["effect"], "seed_std": r["seed_std"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                     "verdict": verdict(r["ci_low"], r["ci_high"], kind, margin),
                     "note": f"{r['seeds']} seeds; {mem}" + (f"; {note}" if note else "")})

    # (i) the decreasing schedule against the homogeneous frontier at 1/0.75 of its memory
    decreasing = ok[ok.kind == "decreasing"]
    uniform = ok[ok.kind == "uniform"]
    best, chosen = None, None
    for name, row in decreasing.iterrows():
        cap = row.kib / (1 - MEMORY_SAVING)
        frontier = uniform[uniform.kib <= cap * (1 + 1e-9)]
        if len(frontier):
            h = frontier.acc_mean.idxmax()
            gap = row.acc_mean - frontier.acc_mean[h]
            if best is None or gap > best:
                best, chosen = gap, (name, h, cap)
    if chosen is not None:
        add("i", "a decreasing schedule with >= 25% less memory than the best homogeneous schedule is as accurate",
            chosen[0], chosen[1], "as accurate",
            f"best homogeneous schedule within {chosen[2]:.2f} KiB (1/0.75 of the decreasing one's memory); "
            f"non-inferiority margin {margin} points")
    else:
        add("i", "a decreasing schedule with >= 25% less memory than the best homogeneous schedule is as accurate",
            None, None, "as accurate", "no decreasing schedule, or no homogeneous one within 1/0.75 of its memory")
    # (ii) more bits in the bottom layers against pure 1-bit
    one_bit = _label(table, entries, "1")
    add("ii", "more bits in the bottom layers beat pure 1-bit", halving, one_bit, "beats")
    # (iii) decreasing against its increasing mirror
    add("iii", "decreasing beats its increasing mirror", halving, _label(table, entries, "increasing"), "beats")
    # (iv) separability allocation at the memory of 8-4-2-1
    alloc = next((label for label, entry in entries.items() if entry.replace(" ", "") in ("alloc:halving",)
                  and label in ok.index), None)
    add("iv", "the separability allocator beats 8-4-2-1 at equal memory", alloc, halving, "beats")
    return pd.DataFrame(rows, columns=COLUMNS)


def claims_text(claims: pd.DataFrame) -> str:
    """The claims as fixed-width lines, for terminals."""
    lines = []
    for r in claims.itertuples():
        if r.verdict == "not measured":
            lines.append(f"({r.claim}) {r.statement}: not measured ({r.note})")
            continue
        lines.append(f"({r.claim}) {r.statement}: {r.verdict.upper()}\n"
                     f"     {r.schedule} vs {r.baseline}: {r.effect:+.2f} points, 95% CI [{r.ci_low:+.2f}, "
                     f"{r.ci_high:+.2f}], seed std {r.seed_std:.2f} ({r.note})")
    return "\n".join(lines)
