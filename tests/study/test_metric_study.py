"""metric_study: which sensitivity metric's predicted loss ranks the allocations as they turn out."""

import contextlib
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

import pdbviz
from pdbviz.analysis import pareto_front, predicted_loss
from pdbviz.claims import accuracy_ci95
from pdbviz.study import CORRELATION_COLUMNS, RUN_COLUMNS, SUMMARY_COLUMNS, MetricStudy, rank_correlation, spearman
from pdbviz.stats import decode_correct

METRICS = ["hawq", "sqnr", "fisher"]
BUDGETS = [1.5, 2, 4]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def data():
    return pdbviz.load_dataset("digits")


@contextlib.contextmanager
def one_thread():
    """A 40k-parameter LeNet trains fastest on one thread, above all on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def study(data):
    with one_thread():
        return pdbviz.metric_study(data, metrics=METRICS, budgets=BUDGETS, seeds=SEEDS, epochs=2,
                                   finetune_epochs=1, n_samples=64, n_boot=200, progress=False)


def test_the_study_has_one_run_per_method_budget_and_seed(study):
    assert list(study.runs.columns) == RUN_COLUMNS
    assert list(study.summary.columns) == SUMMARY_COLUMNS
    assert list(study.correlation.columns) == CORRELATION_COLUMNS
    runs = study.runs
    assert (runs.error == "").all()
    assert len(runs) == len(SEEDS) * (1 + len(METRICS) * len(BUDGETS) + len(BUDGETS))
    counts = runs[runs.family == "metric"].groupby(["method", "budget"]).seed.nunique()
    assert counts.to_dict() == {(m, float(b)): len(SEEDS) for m in METRICS for b in BUDGETS}
    assert runs[runs.family == "float"].budget.isna().all() and (runs[runs.family == "float"].avg_bits == 32).all()
    assert study.correlation.metric.tolist() == METRICS
    assert study.summary.method.tolist() == ["float"] + [m for m in METRICS for _ in BUDGETS] + ["uniform"] * 3
    assert study.config["budgets"] == [1.5, 2.0, 4.0] and study.config["n_test"] == 450
    assert set(study.sensitivity.seed) == set(SEEDS) and set(study.sensitivity.metric) == set(METRICS)
    assert "MetricStudy(3 metrics x 3 budgets x 2 seeds" in repr(study)


def test_every_schedule_meets_its_budget_and_uniform_takes_the_largest_k_within_it(study):
    quant = study.runs[study.runs.family != "float"]
    assert (quant.avg_bits <= quant.budget + 1e-9).all()
    uniform = quant[quant.family == "uniform"]
    assert dict(zip(uniform.budget, uniform.w_bits)) == {1.5: "1-1-1-1-1", 2.0: "2-2-2-2-2", 4.0: "4-4-4-4-4"}
    assert (uniform.avg_bits == np.floor(uniform.budget)).all()
    # most of the budget is used: the front's point is within one layer's step of it
    metric = quant[quant.family == "metric"]
    assert (metric.avg_bits > metric.budget - 1).all()


def test_the_predicted_loss_is_the_front_point_of_the_seeds_own_measurement(study):
    runs = study.runs.set_index(["method", "budget", "seed"])
    template = pdbviz.build_model("lenet", (1, 8, 8), 10)
    for seed in SEEDS:
        frame = study.sensitivity[study.sensitivity.seed == seed].drop(columns="seed")
        for metric in METRICS:
            front = pareto_front(template, predicted_loss(frame, metric, w_bits=range(1, 9)), "memory")
            for b in BUDGETS:
                i = front.index(b)
                row = runs.loc[(metric, float(b), seed)]
                assert row.w_bits == "-".join(map(str, front.table.w_bits.iloc[i]))
                assert row.predicted_loss == pytest.approx(front.table.loss.iloc[i])


def test_the_correlation_is_spearman_of_predicted_loss_and_accuracy_drop_on_the_runs(study):
    runs = study.runs
    assert np.allclose(runs.acc_drop, runs.float_acc - runs.test_acc)
    flt = runs[runs.family == "float"].set_index("seed").test_acc
    assert np.allclose(runs.float_acc, runs.seed.map(flt))
    for r in study.correlation.itertuples():
        df = runs[runs.method == r.metric]
        expected = stats.spearmanr(df.predicted_loss, df.float_acc - df.test_acc).statistic
        assert r.spearman == pytest.approx(expected, nan_ok=True)
        assert r.n_runs == len(BUDGETS) * len(SEEDS) and r.n_seeds == len(SEEDS)
        per_seed = [stats.spearmanr(g.predicted_loss, g.acc_drop).statistic for _, g in df.groupby("seed")]
        per_seed = [v for v in per_seed if np.isfinite(v)]
        if per_seed:
            assert r.seed_mean == pytest.approx(np.mean(per_seed))
        assert -1 <= r.ci_low <= r.ci_high <= 1


def test_the_summary_is_the_mean_of_the_runs_with_the_paired_per_image_interval(study):
    for r in study.summary.itertuples():
        sel = study.runs.method == r.method
        sel &= study.runs.budget.isna() if r.family == "float" else study.runs.budget == r.budget
        accs = study.runs[sel].test_acc
        assert r.acc_mean == pytest.approx(accs.mean()) and r.n_seeds == len(SEEDS)
        correct = study.runs[sel].correct.tolist()
        assert all(len(decode_correct(c)) == 450 for c in correct)
        assert [decode_correct(c).mean() * 100 for c in correct] == pytest.approx(accs.tolist(), abs=1e-9)
        assert r.acc_ci95 == pytest.approx(accuracy_ci95(accs.tolist(), 450, correct=correct))
        assert r.n_schedules == study.runs[sel].w_bits.nunique()


def test_a_schedule_chosen_twice_is_trained_once_per_seed(study):
    quant = study.runs[study.runs.family != "float"]
    assert (quant.groupby(["seed", "w_bits"]).test_acc.nunique() == 1).all()


def test_spearman_handles_ties_like_scipy_and_is_nan_without_a_ranking():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 4, 20), rng.integers(0, 5, 20)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(spearman([1], [2]))
    with pytest.raises(ValueError, match="one length"):
        spearman([1, 2], [1, 2, 3])


def test_a_perfect_predictor_has_rho_one_and_the_bootstrap_reflects_the_test_set():
    runs = pd.DataFrame({"method": "m", "family": "metric", "seed": np.repeat([0, 1, 2], 4),
                         "predicted_loss": np.tile([4.0, 3.0, 2.0, 1.0], 3), "float_acc": 99.0,
                         "test_acc": np.tile([80.0, 85.0, 90.0, 95.0], 3), "error": ""})
    wide = rank_correlation(runs, n_test=100_000, n_boot=200)
    assert wide.spearman[0] == pytest.approx(1.0) and wide.seed_mean[0] == pytest.approx(1.0)
    assert wide.ci_low[0] > 0.95  # 5-point gaps never swap on a huge test set (ties across seeds remain)
    small = rank_correlation(runs, n_test=20, n_boot=200)
    assert small.ci_low[0] < wide.ci_low[0]  # on 20 test images they do
    none = rank_correlation(runs, n_boot=0)
    assert math.isnan(none.ci_low[0]) and math.isnan(none.ci_high[0])
    with pytest.raises(ValueError, match="n_boot"):
        rank_correlation(runs, n_boot=-1)
    with pytest.raises(ValueError, match="level"):
        rank_correlation(runs, level=1.5)


def test_save_load_round_trip_and_pretty(study, tmp_path):
    study.save(tmp_path)
    assert not list(tmp_path.glob(".*.tmp"))
    back = MetricStudy.load(tmp_path)
    for attr in ("runs", "summary", "correlation"):
        pd.testing.assert_frame_equal(getattr(back, attr), getattr(study, attr), check_dtype=False)
    assert back.config == study.config
    for name in ("runs", "summary"):  # a folder saved before the column was renamed
        path = tmp_path / f"study_{name}.csv"
        pd.read_csv(path).rename(columns={"family": "kind"}).to_csv(path, index=False)
    pd.testing.assert_frame_equal(MetricStudy.load(tmp_path).runs, back.runs)
    text = study.pretty()
    assert "higher is better" in text and all(m in text for m in METRICS) and "1.5 bits" in text
    (tmp_path / "study.json").write_text('{"format_version": 99}')
    with pytest.raises(ValueError, match="format_version"):
        MetricStudy.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="study.json"):
        MetricStudy.load(tmp_path / "nowhere")


@pytest.mark.parametrize("kwargs, parameter", [
    ({"metrics": ["fisher", "hessian"]}, "metrics"),
    ({"metrics": []}, "metrics"),
    ({"budgets": [0.5]}, "budgets"),
    ({"budgets": []}, "budgets"),
    ({"budgets": ["2 bits"]}, "budgets"),
    ({"seeds": []}, "seeds"),
    ({"seeds": [0, 0]}, "seeds"),
    ({"epochs": 0}, "epochs"),
    ({"finetune_epochs": 1.5}, "finetune_epochs"),
    ({"n_samples": 1}, "n_samples"),
    ({"n_boot": -1}, "n_boot"),
    ({"w_bits": [2, 9]}, "w_bits"),
    ({"budgets": [1.5], "w_bits": [2, 4]}, "budgets"),
])
def test_bad_input_names_the_parameter(data, kwargs, parameter):
    with pytest.raises(ValueError, match=parameter):
        pdbviz.metric_study(data, progress=False, **kwargs)


def test_the_figure_has_a_line_per_metric_and_a_bar_of_rho_with_intervals(study):
    from pdbviz import plot

    fig = plot.metric_study_figure(study)
    named = [tr.name for tr in fig.data if tr.showlegend is not False]
    assert named[:4] == [*METRICS, "uniform k-bit"] and named[4].startswith("float-32")
    bars = [tr for tr in fig.data if tr.type == "bar"]
    assert len(bars) == 1 and list(bars[0].x) == METRICS
    assert np.allclose(bars[0].y, study.correlation.spearman, equal_nan=True)
    assert np.allclose(np.array(bars[0].y) + np.array(bars[0].error_y.array), study.correlation.ci_high)
    bands = [tr for tr in fig.data if getattr(tr, "fill", None) == "toself"]
    assert len(bands) == len(METRICS) + 1
    assert plot.smallest_font_pt(plot.for_print(fig, "page")) >= 7
    only_left = plot.metric_study_figure(study.summary)
    assert not [tr for tr in only_left.data if tr.type == "bar"]


def test_the_study_report_and_the_optional_section(study, data, tmp_path):
    from pdbviz.report import write_report, write_study_report

    out = write_study_report(study, tmp_path / "study", formats=("html",))
    page = out["report"].read_text(encoding="utf-8")
    assert "Higher is better" in page and "Spearman" in page and "metric_study" in str(out["figures"])
    assert (tmp_path / "study" / "study.json").is_file()
    with one_thread():
        results = pdbviz.compare(data, schedules=["float", "2"], epochs=1, finetune_epochs=1, progress=False)
    plain = write_report(results, tmp_path / "plain", {}, formats=("html",))["report"].read_text(encoding="utf-8")
    assert "metric-study" not in plain
    both = write_report(results, tmp_path / "both", {}, formats=("html",), study=study)
    assert "id='metric-study'" in both["report"].read_text(encoding="utf-8")
    assert (tmp_path / "both" / "study_runs.csv").is_file() and "metric_study" in both["figures"]


def test_interactions_are_measured_only_when_asked(study):
    assert study.interaction.empty and not study.config["interaction_aware"]
    assert "interaction" not in set(study.runs.family) and "interaction_verdicts" not in study.config


def test_the_interaction_aware_allocation_against_the_additive_one(data, tmp_path):
    with one_thread():
        s = pdbviz.metric_study(data, metrics=["hawq"], budgets=[2, 3], seeds=SEEDS, epochs=1, finetune_epochs=1,
                                n_samples=64, n_boot=0, progress=False, interaction_aware=True)
    t = s.interaction.set_index("budget")
    assert t.index.tolist() == [2.0, 3.0] and set(s.config["interaction_verdicts"]) == {"0", "1"}
    runs = s.runs[s.runs.error == ""]
    for b in (2.0, 3.0):
        aware = runs[(runs.method == "hawq+interactions") & (runs.budget == b)].set_index("seed")
        additive = runs[(runs.method == "hawq") & (runs.budget == b)].set_index("seed")
        assert (aware.avg_bits <= b + 1e-9).all() and aware.family.eq("interaction").all()
        same = aware.w_bits == additive.w_bits
        row = t.loc[b]
        assert row.n_same == same.sum()
        if same.all():
            assert row.status == "same" and math.isnan(row.estimate)
        else:
            # the paired seeds x images mean is the mean of the seeds' accuracy differences
            assert row.status == "compared" and row.method == "seeds x images"
            assert row.estimate == pytest.approx((aware.test_acc - additive.test_acc).mean())
            assert row.low < row.estimate < row.high and row.mde > 0
    assert "Interaction-aware allocation against the additive one" in s.pretty()
    loaded = MetricStudy.load(s.save(tmp_path))
    assert loaded.interaction.status.tolist() == s.interaction.status.tolist()


def test_interaction_summary_pairs_seeds_and_images_and_marks_the_same_bits():
    from pdbviz.stats import encode_correct, paired_difference
    from pdbviz.study import interaction_summary

    rng = np.random.default_rng(0)
    a, b = rng.random((3, 50)) < 0.9, rng.random((3, 50)) < 0.8
    b[0] = a[0]  # seed 0 chose the same bits: one run, no difference
    pairs = [{"metric": "m", "budget": 2.0, "seed": s, "additive": "2-2" if s else "4-1", "aware": "4-1",
              "correct_additive": encode_correct(b[s]), "correct_aware": encode_correct(a[s])} for s in range(3)]
    pairs += [{"metric": "m", "budget": 4.0, "seed": s, "additive": "4-4", "aware": "4-4", "correct_additive": "",
               "correct_aware": ""} for s in range(3)]
    t = interaction_summary(pairs).set_index("budget")
    e = paired_difference(a, b)
    assert t.status.tolist() == ["compared", "same"] and t.n_same.tolist() == [1, 3]
    assert t.estimate[2.0] == pytest.approx(e.estimate) and t.high[2.0] == pytest.approx(e.high)
    assert t.mde[2.0] == pytest.approx(e.mde()) and t.w_bits_additive[2.0] == "2-2"
