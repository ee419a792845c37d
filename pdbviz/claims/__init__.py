"""The paper's claims, evaluated on a comparison's own runs, with their uncertainty and what it would take to decide.

Claims (Chu et al. 2021, and the controls a reviewer asks for):

(i)   a decreasing schedule is as accurate as homogeneous schedules that need
      at least 1/0.75 of its memory (it saves at least 25%): the decreasing
      schedule (8-4-2-1 when run, else the first decreasing one) against the
      *nearest* such homogeneous schedule (the least memory at or above
      1/0.75 of its own: row ``i-nearest``) and against the *most accurate*
      such one (row ``i-best``); one row ``i`` when they are the same;
(ii)  more bits in the bottom layers beat pure 1-bit: 8-4-2-1 against uniform 1-bit;
(iii) decreasing beats its increasing mirror: 8-4-2-1 against increasing 1→8;
(iv)  the separability allocator beats 8-4-2-1 at equal memory: the schedule
      allocated at 8-4-2-1's memory against 8-4-2-1.

The effect is a difference of mean test accuracies (points), paired by seed
(both schedules start from the same float model). Its interval is the one of
``pdbviz.stats``: with per-image correctness in the runs table (a ``correct``
column of ``pdbviz.stats.encode_correct`` texts) the seeds x images variance
of the paired difference on the shared test set, else the seed spread plus
two binomial image terms; either with a t quantile of Satterthwaite's degrees
of freedom. The estimand is the difference a new seed would show on new test
images.

Verdicts: a claim that one schedule *beats* another holds when the whole
interval lies above 0 and does not hold when it lies below 0; an *as
accurate* claim holds when the interval lies above ``-margin`` (0.5 points by
default) and does not hold when it lies below it. Anything else is *within
noise*, given with the experiment's minimum detectable effect and the seeds
or test images that would detect the observed effect (its distance from
``-margin`` for an *as accurate* claim) at 80% power. Two labels of the same
schedule (the allocator returned 8-4-2-1 itself) are *not testable*; a claim
whose schedules the comparison did not run is *not measured*.

The float reference of the claims is the float control trained as long as
the quantized runs when the comparison has one (entry ``"float:long"``, or a
``float_control`` column that is True on its row), else the plain float run.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..stats import Estimate, decode_correct, from_accuracies, paired_difference, two_way

#: the verdicts a claim can get.
VERDICTS = ("holds", "within noise", "does not hold", "not testable", "not measured")
#: columns of the claims table (``evaluate_claims``).
COLUMNS = ["claim", "statement", "schedule", "baseline", "effect", "seed_std", "ci_low", "ci_high", "verdict",
           "note", "schedule_kib", "baseline_kib", "se", "df", "mde", "seeds_needed", "images_needed", "method",
           "float_run", "conclusion"]
#: the memory saving of claim (i): a decreasing schedule against homogeneous ones with >= 1/(1 - 0.25) of its memory.
MEMORY_SAVING = 0.25
#: the entry of the float control trained as long as the quantized runs.
FLOAT_CONTROL = "float:long"
RELATIONS = ("beats", "as accurate")
_METHODS = {"seeds x images": "interval paired over seeds and test images",
            "images (one seed)": "interval paired over test images (one seed: the seed spread is unknown)",
            "seeds + binomial": "interval from the seed spread and binomial test-set terms (no per-image correctness)"}


def correct_matrix(runs: pd.DataFrame, schedule: str, seeds) -> np.ndarray | None:
    """Seeds x images correctness of ``schedule`` (rows in the order of ``seeds``) from the runs' ``correct``
    column; None when the column is missing or a seed lacks it or the lengths differ.

    Example:
        >>> from pdbviz.stats import encode_correct
        >>> runs = pd.DataFrame({"schedule": "a", "seed": [0, 1], "test_acc": [50.0, 100.0], "error": "",
        ...                      "correct": [encode_correct([1, 0]), encode_correct([1, 1])]})
        >>> correct_matrix(runs, "a", [1, 0]).tolist()
        [[True, True], [True, False]]
    """
    if "correct" not in runs.columns:
        return None
    ok = runs[(runs.error.fillna("") == "") & (runs.schedule == schedule)].set_index("seed")
    vectors = []
    for s in seeds:
        if s not in ok.index:
            return None
        v = decode_correct(ok.correct.loc[s])
        if v is None or (vectors and len(v) != len(vectors[0])) or len(v) < 2:
            return None
        vectors.append(v)
    return np.vstack(vectors) if vectors else None


def _paired(runs: pd.DataFrame, a: str, b: str) -> tuple[list, np.ndarray, np.ndarray]:
    ok = runs[runs.error.fillna("") == ""]
    ra = ok[ok.schedule == a].set_index("seed").test_acc
    rb = ok[ok.schedule == b].set_index("seed").test_acc
    seeds = sorted(set(ra.index) & set(rb.index))
    return seeds, ra.loc[seeds].to_numpy(float), rb.loc[seeds].to_numpy(float)


def difference(runs: pd.DataFrame, schedule: str, baseline: str, n_test: int | None) -> Estimate:
    """``schedule`` minus ``baseline`` (points) over their common seeds, as a ``pdbviz.stats.Estimate``.

    Per-image correctness (the runs' ``correct`` column) gives the paired
    seeds x images interval; without it, the seed spread and binomial terms.
    """
    seeds, a, b = _paired(runs, schedule, baseline)
    ca, cb = correct_matrix(runs, schedule, seeds), correct_matrix(runs, baseline, seeds)
    if len(seeds) and ca is not None and cb is not None and ca.shape == cb.shape:
        return paired_difference(ca, cb)
    return from_accuracies(a, n_test, baseline=b)


def compare_schedules(runs: pd.DataFrame, schedule: str, baseline: str, n_test: int | None,
                      z: float | None = None) -> dict:
    """Effect (points), seed spread, confidence interval, power and sample sizes of ``schedule`` minus ``baseline``.

    ``z`` replaces the t quantile by a fixed one (None: t with Satterthwaite's
    degrees of freedom, see ``pdbviz.stats``).

    Example:
        >>> runs = pd.DataFrame({"schedule": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2,
        ...                      "test_acc": [98.0, 98.4, 98.2, 97.0, 97.2, 97.1], "error": ""})
        >>> r = compare_schedules(runs, "a", "b", n_test=450)
        >>> round(r["effect"], 2), round(r["ci_low"], 2), round(r["ci_high"], 2), r["method"]
        (1.1, -0.89, 3.09, 'seeds + binomial')

        On 450 test images the 1.1 points are within noise; on 10,000 they are not:

        >>> compare_schedules(runs, "a", "b", n_test=10_000)["ci_low"] > 0
        True
    """
    seeds, a, b = _paired(runs, schedule, baseline)
    if len(seeds) == 0:
        return {"effect": math.nan, "seed_std": math.nan, "ci_low": math.nan, "ci_high": math.nan, "seeds": 0,
                "se": math.nan, "df": math.nan, "mde": math.nan, "method": "", "estimate": None}
    e = difference(runs, schedule, baseline, n_test)
    half = z * e.se if z is not None else e.half_width
    diff = a - b
    return {"effect": float(diff.mean()), "seed_std": float(diff.std(ddof=1)) if len(diff) > 1 else 0.0,
            "ci_low": e.estimate - half, "ci_high": e.estimate + half, "seeds": len(seeds), "se": e.se, "df": e.df,
            "mde": e.mde(), "method": e.method, "estimate": e}


def accuracy_ci95(accs, n_test: int | None, z: float | None = None, correct=None) -> float:
    """Half-width (points) of the 95% interval of a mean accuracy over new seeds and new test images.

    With ``correct`` (one per-image correctness vector per seed: booleans,
    ``encode_correct`` texts, or a seeds x images array) the seeds x images
    interval of ``pdbviz.stats.two_way``; otherwise ``var_seeds(acc) / seeds
    + p (1 - p) / n`` with ``p`` the mean accuracy and ``n = n_test``
    (``None``: the seed spread alone). The quantile is Student's t with
    Satterthwaite's degrees of freedom, or ``z`` when given. NaN for no
    accuracies.

    Example:
        >>> round(accuracy_ci95([98.0, 98.4, 98.2], n_test=450), 2)
        1.25
        >>> round(accuracy_ci95([98.0, 98.4, 98.2], n_test=None), 2)  # t with 2 degrees of freedom
        0.5
    """
    accs = [float(a) for a in accs]
    if not accs:
        return math.nan
    e = None
    if correct is not None:
        rows = [decode_correct(c) if isinstance(c, str) else np.asarray(c, dtype=bool) for c in correct]
        if rows and all(r is not None for r in rows) and len({len(r) for r in rows}) == 1 and len(rows[0]) > 1:
            e = two_way(np.vstack(rows))
    if e is None:
        e = from_accuracies(accs, n_test)
    return z * e.se if z is not None else e.half_width


def verdict(ci_low: float, ci_high: float, relation: str, margin: float = 0.5) -> str:
    """``holds`` / ``within noise`` / ``does not hold`` for a ``"beats"`` or an ``"as accurate"`` claim.

    Example:
        >>> verdict(-0.3, 1.2, "as accurate"), verdict(-0.3, 1.2, "beats")
        ('holds', 'within noise')
    """
    if relation not in RELATIONS:
        raise ValueError(f"relation must be one of {RELATIONS}, got {relation!r}")
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return "not measured"
    floor = 0.0 if relation == "beats" else -margin
    if ci_low > floor:
        return "holds"
    if ci_high < floor:
        return "does not hold"
    return "within noise"


def _label(table: pd.DataFrame, entries: dict, entry: str) -> str | None:
    for label, given in entries.items():
        if str(given).replace(" ", "") == entry and label in set(table.schedule):
            return label
    return None


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    return table[(table.error.fillna("") == "") & np.isfinite(table.acc_mean.astype(float))]


def float_reference(table: pd.DataFrame, entries: dict, float_label: str | None = None) -> str | None:
    """The label of the float run the claims refer to: ``float_label``, else the row marked by a true
    ``float_control`` column, else entry ``"float:long"`` (trained as long as the quantized runs), else ``"float"``.

    Example:
        >>> t = pd.DataFrame({"schedule": ["float-32", "float-32 (long)"], "shape": "float"})
        >>> float_reference(t, {"float-32": "float", "float-32 (long)": "float:long"})
        'float-32 (long)'
    """
    labels = set(table.schedule)
    if float_label is not None:
        if float_label not in labels:
            raise ValueError(f"float_label {float_label!r} is not a schedule of the table; choose from "
                             f"{sorted(labels)}")
        return float_label
    if "float_control" in table.columns:
        marked = table[table.float_control.fillna(False).astype(bool)].schedule.tolist()
        if marked:
            return marked[0]
    return _label(table, entries, FLOAT_CONTROL) or _label(table, entries, "float")


def _describe_float(ok: pd.DataFrame, entries: dict, label: str | None) -> str:
    if label is None or label not in ok.index:
        return "none (no float run)"
    long = str(entries.get(label, "")).replace(" ", "") == FLOAT_CONTROL or \
        bool(ok.get("float_control", pd.Series(False, index=ok.index)).fillna(False).astype(bool)[label])
    how = "trained as long as the quantized runs" if long else \
        "the float run; no float control trained as long as the quantized runs"
    return f"{label} ({float(ok.acc_mean[label]):.2f}%, {how})"


def _same(ok: pd.DataFrame, a: str, b: str, strings: dict | None) -> bool:
    if a == b:
        return True
    if strings and a in strings and b in strings:
        return strings[a] == strings[b]
    if "w_bits" not in ok.columns:
        return False
    return bool(ok.w_bits[a] == ok.w_bits[b] and ok.get("a_bits", ok.w_bits)[a] == ok.get("a_bits", ok.w_bits)[b])


def evaluate_claims(table: pd.DataFrame, runs: pd.DataFrame, entries: dict, n_test: int | None,
                    margin: float = 0.5, *, schedule_strings: dict | None = None,
                    float_label: str | None = None) -> pd.DataFrame:
    """The claims of the module docstring, one row each (see ``COLUMNS``), with a one-line ``conclusion``.

    Args:
        table, runs, entries, n_test: a comparison's table, runs (with a
            ``correct`` column for the per-image interval), ``{label: entry}``
            and test-set size (``Results.table``, ``.runs``,
            ``.config["entries"]``, ``.config["n_test"]``).
        margin: non-inferiority margin (points) of the "as accurate" claim.
        schedule_strings: ``{label: schedule string}`` (``config["schedule_strings"]``):
            two labels with the same string are the same schedule (default: same bits).
        float_label: the float run to refer to (default: ``float_reference``).

    Example:
        >>> t = pd.DataFrame({"schedule": ["8-4-2-1", "alloc"], "shape": ["decreasing", "allocated"],
        ...                   "w_bits": "8-4-2-1", "a_bits": "32-32-32-32", "kib": 11.4, "acc_mean": [97.0, 97.1],
        ...                   "error": ""})
        >>> runs = pd.DataFrame({"schedule": ["8-4-2-1", "alloc"], "seed": 0, "test_acc": [97.0, 97.1],
        ...                      "error": ""})
        >>> c = evaluate_claims(t, runs, {"8-4-2-1": "halving", "alloc": "alloc:halving"}, 450)
        >>> c.set_index("claim").verdict["iv"]
        'not testable'
    """
    from .text import conclusion

    ok = _ok(table).set_index("schedule")
    halving = _label(table, entries, "halving")
    reference = float_reference(table, entries, float_label)
    float_run = _describe_float(ok, entries, reference)
    rows = []

    def add(claim, statement, schedule, baseline, relation, note=""):
        row = dict.fromkeys(COLUMNS, math.nan)
        row.update(claim=claim, statement=statement, schedule=schedule or "-", baseline=baseline or "-", note=note,
                   method="", float_run=float_run)
        if schedule is None or baseline is None or schedule not in ok.index or baseline not in ok.index:
            row.update(verdict="not measured", note=note or "schedules not in the run")
        else:
            row.update(schedule_kib=float(ok.kib[schedule]), baseline_kib=float(ok.kib[baseline]))
            if _same(ok, schedule, baseline, schedule_strings):
                row.update(verdict="not testable", note="the same schedule" + (f"; {note}" if note else ""))
            else:
                r = compare_schedules(runs, schedule, baseline, n_test)
                row.update({k: r[k] for k in ("effect", "seed_std", "ci_low", "ci_high", "se", "df", "mde",
                                              "method")})
                row["verdict"] = verdict(r["ci_low"], r["ci_high"], relation, margin)
                if row["verdict"] == "within noise" and r["estimate"] is not None:
                    target = r["effect"] + margin if relation == "as accurate" else r["effect"]
                    need = r["estimate"].needed(target)
                    row.update(seeds_needed=need["seeds"], images_needed=need["images"])
                row["note"] = f"{r['seeds']} seeds; {_METHODS.get(r['method'], r['method'])}" + \
                    (f"; {note}" if note else "")
        row["conclusion"] = conclusion(row, relation, margin)
        rows.append(row)

    _claim_i(ok, entries, table, halving, margin, add)
    add("ii", "more bits in the bottom layers beat pure 1-bit", halving, _label(table, entries, "1"), "beats")
    add("iii", "decreasing beats its increasing mirror", halving, _label(table, entries, "increasing"), "beats")
    alloc = _label(table, entries, "alloc:halving")
    add("iv", "the separability allocator beats 8-4-2-1 at equal memory", alloc, halving, "beats")
    out = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("seeds_needed", "images_needed"):
        out[col] = out[col].astype("Int64")
    return out


def _claim_i(ok, entries, table, halving, margin, add) -> None:
    statement = "a decreasing schedule is as accurate as {} homogeneous schedule using >= 1/0.75 of its memory"
    decreasing = [halving] if halving in ok.index else ok.index[ok["shape"] == "decreasing"].tolist()[:1]
    if not decreasing:
        add("i", statement.format("the"), None, None, "as accurate", "no decreasing schedule in the run")
        return
    dec = decreasing[0]
    floor = float(ok.kib[dec]) / (1 - MEMORY_SAVING)
    uniform = ok[(ok["shape"] == "uniform") & (ok.kib >= floor * (1 - 1e-9))]
    if uniform.empty:
        add("i", statement.format("the"), dec, None, "as accurate",
            f"no homogeneous schedule with >= {floor:.2f} KiB (1/0.75 of {dec}'s memory)")
        return
    nearest = uniform.sort_values(["kib", "acc_mean"], ascending=[True, False]).index[0]
    best = uniform.acc_mean.idxmax()
    note = f"homogeneous schedules with >= {floor:.2f} KiB; non-inferiority margin {margin} points"
    if nearest == best:
        add("i", statement.format("the nearest and most accurate"), dec, nearest, "as accurate", note)
        return
    add("i-nearest", statement.format("the nearest"), dec, nearest, "as accurate", note)
    add("i-best", statement.format("the most accurate"), dec, best, "as accurate", note)


def claims_text(claims: pd.DataFrame) -> str:
    """The claims as text for terminals: each statement, then its one-line conclusion and details.

    Example:
        >>> t = pd.DataFrame({"schedule": ["8-4-2-1", "uniform 1-bit"], "shape": ["decreasing", "uniform"],
        ...                   "w_bits": ["8-4-2-1", "1-1-1-1"], "a_bits": "32-32-32-32", "kib": [11.42, 9.89],
        ...                   "acc_mean": [97.1, 96.1], "error": ""})
        >>> runs = pd.DataFrame({"schedule": ["8-4-2-1"] * 3 + ["uniform 1-bit"] * 3, "seed": [0, 1, 2] * 2,
        ...                      "test_acc": [97.0, 97.2, 97.1, 96.0, 96.3, 96.0], "error": ""})
        >>> claims = evaluate_claims(t, runs, {"8-4-2-1": "halving", "uniform 1-bit": "1"}, n_test=450)
        >>> print(claims_text(claims.iloc[1:2]))  # doctest: +NORMALIZE_WHITESPACE
        float reference: none (no float run)
        (ii) more bits in the bottom layers beat pure 1-bit
             within noise: 8-4-2-1 (11.42 KiB) vs uniform 1-bit (9.89 KiB): +1.00 points, 95% CI [-1.38, +3.38];
             the experiment detects 3.39 points (80% power, 5% two-sided); detecting +1.00 points would take
             5,296 test images
             seed std 0.10; 3 seeds; interval from the seed spread and binomial test-set terms (no per-image
             correctness)
    """
    from .text import text

    return text(claims)


def claims_html(claims: pd.DataFrame) -> str:
    """The claims as an HTML table (statement, schedules and memories, effect and interval, verdict, conclusion)."""
    from .text import html_table

    return html_table(claims)


__all__ = ["COLUMNS", "FLOAT_CONTROL", "MEMORY_SAVING", "VERDICTS", "accuracy_ci95", "claims_html", "claims_text",
           "compare_schedules", "correct_matrix", "difference", "evaluate_claims", "float_reference", "verdict"]
