"""The paper's claims on tables whose right answer is known: the baselines of claim (i), identical schedules,
the float reference, per-image intervals, and what a "within noise" verdict says."""

import math

import numpy as np
import pandas as pd
import pytest

from pdbviz.claims import (COLUMNS, accuracy_ci95, claims_html, claims_text, compare_schedules, evaluate_claims,
                           float_reference, verdict)
from pdbviz.stats import encode_correct, from_accuracies, two_way

N_TEST = 450


def comparison(spec, seeds=(0, 1, 2), correct=None):
    """A table, runs and entries: ``spec`` is ``{label: (entry, shape, w_bits, kib, [acc per seed])}``;
    ``correct`` optionally ``{label: seeds x images booleans}`` (accuracies then follow from it)."""
    rows, runs = [], []
    for label, (entry, shape, w_bits, kib, accs) in spec.items():
        if correct and label in correct:
            accs = list(correct[label].mean(1) * 100)
        for s, a in zip(seeds, accs):
            run = {"schedule": label, "seed": s, "test_acc": a, "error": ""}
            if correct and label in correct:
                run["correct"] = encode_correct(correct[label][seeds.index(s)])
            runs.append(run)
        rows.append({"schedule": label, "shape": shape, "w_bits": w_bits, "a_bits": "32-32-32-32", "kib": kib,
                     "acc_mean": float(np.mean(accs)), "error": ""})
    entries = {label: v[0] for label, v in spec.items()}
    return pd.DataFrame(rows), pd.DataFrame(runs), entries


BASE = {
    "float-32": ("float", "float", "32-32-32-32", 320.0, [98.0, 98.2, 98.1]),
    "uniform 1-bit": ("1", "uniform", "1-1-1-1", 9.89, [95.0, 95.2, 95.1]),
    "uniform 2-bit": ("2", "uniform", "2-2-2-2", 19.79, [96.0, 96.1, 96.2]),
    "ternary": ("symmetric:2", "uniform", "2-2-2-2", 19.79, [97.5, 97.6, 97.4]),
    "uniform 4-bit": ("4", "uniform", "4-4-4-4", 39.58, [97.0, 97.2, 97.1]),
    "8-4-2-1": ("halving", "decreasing", "8-4-2-1", 11.42, [97.0, 97.3, 97.1]),
    "increasing 1→8": ("increasing", "increasing", "1-2-4-8", 60.0, [96.0, 96.3, 96.2]),
    "allocated @ 8-4-2-1": ("alloc:halving", "allocated", "8-2-2-1", 11.42, [97.1, 97.2, 97.0]),
}


def claims_of(spec=BASE, **kw):
    table, runs, entries = comparison(spec)
    return evaluate_claims(table, runs, entries, N_TEST, **kw).set_index("claim")


def test_claim_i_compares_with_homogeneous_schedules_of_at_least_four_thirds_the_memory():
    c = claims_of()
    floor = 11.42 / 0.75  # 15.23 KiB: uniform 1-bit (9.89 KiB) is smaller and never a baseline of claim (i)
    # ternary: 19.79 KiB (the least at or above the floor; tied with uniform 2-bit, more accurate) and 97.5%
    # (the most accurate of those at or above it): one row
    assert c.baseline["i"] == "ternary" and c.loc["i", "baseline_kib"] >= floor
    assert c.loc["i", "schedule"] == "8-4-2-1" and c.loc["i", "schedule_kib"] == 11.42
    assert "uniform 1-bit" not in set(c.baseline[["i"]])


def test_claim_i_shows_the_nearest_and_the_most_accurate_when_they_differ():
    spec = dict(BASE)
    spec["ternary"] = ("symmetric:2", "uniform", "2-2-2-2", 19.79, [95.5, 95.6, 95.4])
    c = claims_of(spec)
    assert c.baseline["i-nearest"] == "uniform 2-bit"  # 19.79 KiB and more accurate than ternary now
    assert c.baseline["i-best"] == "uniform 4-bit"  # 97.1%, the most accurate of those >= 15.23 KiB
    # 8-4-2-1 loses 0.0 points against uniform 4-bit: within a 0.5-point margin, with 3 seeds
    assert c.effect["i-best"] == pytest.approx(np.mean([97.0, 97.3, 97.1]) - 97.1)


def test_claim_i_is_one_row_when_the_nearest_is_the_most_accurate():
    spec = {k: v for k, v in BASE.items() if k not in ("uniform 2-bit", "ternary")}
    c = claims_of(spec)
    assert c.baseline["i"] == "uniform 4-bit" and "nearest and most accurate" in c.statement["i"]


def test_claim_i_is_not_measured_without_a_large_enough_homogeneous_schedule():
    spec = {k: v for k, v in BASE.items() if k not in ("uniform 2-bit", "ternary", "uniform 4-bit")}
    c = claims_of(spec)
    assert c.verdict["i"] == "not measured" and "15.23 KiB" in c.note["i"]


def test_the_same_schedule_twice_is_not_testable():
    spec = dict(BASE)
    spec["allocated @ 8-4-2-1"] = ("alloc:halving", "allocated", "8-4-2-1", 11.42, [97.0, 97.3, 97.1])
    c = claims_of(spec)
    assert c.verdict["iv"] == "not testable" and math.isnan(c.effect["iv"])
    assert "not testable" in c.conclusion["iv"] and "11.42 KiB" in c.conclusion["iv"]
    # different quantizers with the same bits are different schedules when the schedule strings say so
    strings = {label: label for label in spec}
    assert claims_of(spec, schedule_strings=strings).verdict["iv"] != "not testable"


def test_the_float_reference_is_the_long_control_when_there_is_one():
    c = claims_of()
    assert c.float_run.iloc[0].startswith("float-32 (98.10%") and "no float control" in c.float_run.iloc[0]
    spec = dict(BASE)
    spec["float-32 (long)"] = ("float:long", "float", "32-32-32-32", 320.0, [98.3, 98.4, 98.5])
    c = claims_of(spec)
    assert c.float_run.iloc[0] == "float-32 (long) (98.40%, trained as long as the quantized runs)"
    table, runs, entries = comparison(BASE)
    table["float_control"] = table.schedule == "uniform 4-bit"
    assert float_reference(table, entries) == "uniform 4-bit"
    assert float_reference(table, entries, float_label="float-32") == "float-32"
    with pytest.raises(ValueError, match="float_label 'nope'"):
        float_reference(table, entries, float_label="nope")


def test_verdicts_follow_the_interval():
    spec = dict(BASE)
    spec["uniform 1-bit"] = ("1", "uniform", "1-1-1-1", 9.89, [80.0, 80.5, 80.2])  # 8-4-2-1 far ahead
    spec["increasing 1→8"] = ("increasing", "increasing", "1-2-4-8", 60.0, [99.5, 99.6, 99.7])  # far behind
    c = claims_of(spec)
    assert c.verdict["ii"] == "holds" and c.ci_low["ii"] > 0
    assert c.verdict["iii"] == "does not hold" and c.ci_high["iii"] < 0
    assert verdict(-0.4, 0.2, "as accurate") == "holds" and verdict(-0.4, 0.2, "beats") == "within noise"
    with pytest.raises(ValueError, match="relation must be one of"):
        verdict(0, 1, "better")


def test_within_noise_says_what_the_experiment_can_detect_and_what_would_decide():
    c = claims_of()
    row = c.loc["iv"]  # allocated vs 8-4-2-1: -0.03 points on 3 seeds and 450 images
    assert row.verdict == "within noise"
    est = from_accuracies([97.1, 97.2, 97.0], N_TEST, baseline=[97.0, 97.3, 97.1])
    assert row.mde == pytest.approx(est.mde())
    need = est.needed(row.effect)
    for got, want in ((row.seeds_needed, need["seeds"]), (row.images_needed, need["images"])):
        assert (pd.isna(got) and want is None) or got == want
    ii = c.loc["ii"]  # 2.03 points with the binomial image term: more images would decide, more seeds not
    assert ii.verdict == "within noise" and pd.isna(ii.seeds_needed) and ii.images_needed > N_TEST
    assert ii.images_needed == from_accuracies([97.0, 97.3, 97.1], N_TEST, baseline=[95.0, 95.2, 95.1]).needed(
        ii.effect)["images"]
    assert f"would take {ii.images_needed:,} test images" in ii.conclusion
    assert f"detects {row.mde:.2f} points" in row.conclusion
    assert "out of reach of more seeds or more test images" in row.conclusion  # -0.03 points: below the seed term


def test_per_image_correctness_gives_the_paired_interval():
    rng = np.random.default_rng(0)
    hard = rng.random(N_TEST) < 0.1
    a = np.tile(~hard, (3, 1))
    b = a.copy()
    b[:, :6] = False  # the baseline misses 6 more images, every seed
    b[1, 100] = ~b[1, 100]
    spec = {"8-4-2-1": ("halving", "decreasing", "8-4-2-1", 11.42, None),
            "uniform 1-bit": ("1", "uniform", "1-1-1-1", 9.89, None)}
    table, runs, entries = comparison(spec, correct={"8-4-2-1": a, "uniform 1-bit": b})
    r = compare_schedules(runs, "8-4-2-1", "uniform 1-bit", N_TEST)
    assert r["method"] == "seeds x images"
    assert r["effect"] == pytest.approx(100 * (a.mean() - b.mean()))
    assert r["ci_high"] - r["ci_low"] == pytest.approx(2 * r["estimate"].half_width)
    fallback = compare_schedules(runs.drop(columns="correct"), "8-4-2-1", "uniform 1-bit", N_TEST)
    assert fallback["method"] == "seeds + binomial" and fallback["ci_high"] - fallback["ci_low"] > \
        2 * (r["ci_high"] - r["ci_low"])
    c = evaluate_claims(table, runs, entries, N_TEST).set_index("claim")
    assert c.verdict["ii"] == "holds" and c.method["ii"] == "seeds x images"  # 1.3 points, paired: decided


def test_accuracy_ci95_uses_per_image_correctness_when_given():
    rng = np.random.default_rng(1)
    c = rng.random((3, N_TEST)) < 0.95
    accs = c.mean(1) * 100
    assert accuracy_ci95(accs, N_TEST, correct=c) == pytest.approx(two_way(c).half_width)
    assert accuracy_ci95(accs, N_TEST, correct=[encode_correct(r) for r in c]) == pytest.approx(two_way(c).half_width)
    assert accuracy_ci95(accs, N_TEST) == pytest.approx(from_accuracies(accs, N_TEST).half_width)
    assert accuracy_ci95(accs, N_TEST, z=1.96) == pytest.approx(1.96 * from_accuracies(accs, N_TEST).se)
    assert math.isnan(accuracy_ci95([], N_TEST))


def test_claims_print_with_statements_memories_and_conclusions():
    table, runs, entries = comparison(BASE)
    c = evaluate_claims(table, runs, entries, N_TEST)  # called as compare's Results.claims calls it
    assert list(c.columns) == COLUMNS
    text = claims_text(c)
    assert text.splitlines()[0].startswith("float reference: float-32")
    for r in c.itertuples():
        assert f"({r.claim}) {r.statement}" in text and r.conclusion in text
    assert "8-4-2-1 (11.42 KiB) vs uniform 1-bit (9.89 KiB)" in text and "3 seeds" in text
    page = claims_html(c)
    assert page.count("<tr>") == len(c) + 1 and "8-4-2-1 vs uniform 1-bit (11.42 vs 9.89 KiB)" in page


def test_claims_not_in_the_run_are_not_measured():
    spec = {k: v for k, v in BASE.items() if k in ("float-32", "8-4-2-1")}
    c = claims_of(spec)
    assert set(c.verdict) == {"not measured"}
    assert c.conclusion["ii"] == "not measured: schedules not in the run"
