import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import pdbviz
from pdbviz import (BitSchedule, allocate_bits, average_bits, collect_features, fisher_score, layer_sensitivity, quantization_error, quantize, separability_profile)
from pdbviz.analysis import difficulty, knn_accuracy, linear_probe_accuracy, silhouette, sqnr_db


def test_fisher_equals_analytic_value_on_gaussian_classes():
    rng = np.random.default_rng(0)
    d, sigma, m, n = 5, 0.5, 2.0, 40_000
    means = np.array([[m] + [0] * (d - 1), [-m] + [0] * (d - 1), [0, m] + [0] * (d - 2)])
    y = rng.integers(0, 3, n)
    X = means[y] + sigma * rng.normal(size=(n, d))
    mu = means.mean(0)  # equal priors
    expected = np.mean(np.sum((means - mu) ** 2, axis=1)) / (d * sigma**2)
    assert fisher_score(X, y) == pytest.approx(expected, rel=0.02)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(6, 40), d=st.integers(1, 6), k=st.integers(2, 4))
def test_fisher_equals_trace_of_scatter_matrices(seed, n, d, k):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.arange(n) % k
    mu = X.mean(0)
    SB = sum((y == c).sum() * np.outer(X[y == c].mean(0) - mu, X[y == c].mean(0) - mu) for c in range(k))
    SW = sum((X[y == c] - X[y == c].mean(0)).T @ (X[y == c] - X[y == c].mean(0)) for c in range(k))
    assert fisher_score(X, y) == pytest.approx(np.trace(SB) / np.trace(SW), rel=1e-9)


def test_measures_order_separable_and_mixed_data():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1, 2], 60)
    sep = np.eye(3)[y] * 5 + rng.normal(size=(180, 3))
    mixed = rng.normal(size=(180, 3))
    assert fisher_score(sep, y) > 10 * fisher_score(mixed, y)
    assert linear_probe_accuracy(sep, y) > 0.95 > 0.6 > linear_probe_accuracy(mixed, y)
    assert knn_accuracy(sep, y) > 0.95 and knn_accuracy(mixed, y) < 0.6
    assert silhouette(sep, y) > 0.4 > silhouette(mixed, y)


@pytest.mark.parametrize("fn", [fisher_score, linear_probe_accuracy, knn_accuracy, silhouette])
def test_measure_errors(fn):
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="1 class\\(es\\); separability needs at least 2"):
        fn(X, np.zeros(10))
    with pytest.raises(ValueError, match="one label per sample"):
        fn(X, np.arange(9) % 2)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(bad, np.arange(10) % 2)
    with pytest.raises(ValueError, match="2-D array"):
        fn(X[:, 0], np.arange(10) % 2)


def test_collect_features_are_layer_inputs_and_hooks_are_removed(small_cnn):
    X = torch.randn(7, 1, 16, 16)
    small_cnn.train()
    feats = collect_features(small_cnn, X, pool="flatten", batch_size=3)
    assert list(feats) == ["conv1", "conv2", "head", "logits"]
    assert feats["conv1"].shape == (7, 256) and feats["conv2"].shape == (7, 8 * 8 * 8)
    np.testing.assert_allclose(feats["conv1"], X.flatten(1).numpy())
    small_cnn.eval()
    with torch.no_grad():
        np.testing.assert_allclose(feats["logits"], small_cnn(X).numpy(), rtol=1e-5, atol=1e-6)
    small_cnn.train()
    assert small_cnn.training  # mode restored
    assert all(not m._forward_pre_hooks for m in small_cnn.modules())
    avg = collect_features(small_cnn, X, pool="avg", layers=["conv2"])
    assert avg["conv2"].shape == (7, 8)
    proj = collect_features(small_cnn, X, pool="project", max_dim=32, seed=3)
    again = collect_features(small_cnn, X, pool="project", max_dim=32, seed=3)
    assert proj["conv2"].shape == (7, 32) and np.array_equal(proj["conv2"], again["conv2"])


def test_collect_features_removes_hooks_after_errors(small_cnn):
    with pytest.raises(ValueError, match="cannot take X of shape \\(3, 16, 16\\) per sample"):
        collect_features(small_cnn, torch.randn(2, 3, 16, 16))  # wrong channel count

    class FailsOnSmallBatches(nn.Module):
        def forward(self, x):
            if len(x) < 2:
                raise RuntimeError("boom")
            return x

    net = nn.Sequential(nn.Linear(4, 3), FailsOnSmallBatches())
    with pytest.raises(RuntimeError, match="boom"):
        collect_features(net, torch.randn(5, 4), batch_size=2)  # the last batch fails while hooked
    assert all(not m._forward_pre_hooks for m in net.modules())
    with pytest.raises(ValueError, match="pool must be one of"):
        collect_features(small_cnn, torch.randn(2, 1, 16, 16), pool="max")
    with pytest.raises(ValueError, match="not layers whose input pdbviz can observe"):
        collect_features(small_cnn, torch.randn(2, 1, 16, 16), layers=["bn1"])


def test_profile_of_float_and_quantized_models(trained):
    model, data = trained
    prof = separability_profile(model, data, n_samples=300)
    assert prof.layer.tolist() == ["conv1", "conv2", "fc1", "fc2", "fc3", "logits"]
    assert prof.depth.tolist() == list(range(6))
    assert set(prof.columns) == {"layer", "depth", "dims", "fisher", "probe", "knn", "silhouette"}
    # a trained network separates classes better deep than at the input
    assert prof.fisher.iloc[-1] > 3 * prof.fisher.iloc[0]
    q = quantize(model, "8-4-2-1")
    qprof = separability_profile(q, data, metrics=["fisher"], n_samples=300)
    assert qprof.layer.tolist() == prof.layer.tolist()
    assert qprof.fisher.iloc[0] == pytest.approx(prof.fisher.iloc[0])  # same input
    with pytest.raises(ValueError, match="unknown measure 'fischer'.*Did you mean 'fisher'"):
        separability_profile(model, data, metrics=["fischer"])
    with pytest.raises(ValueError, match="n_samples must be an integer >= 2"):
        separability_profile(model, data, n_samples=1)


def test_quantization_error_grows_as_bits_shrink(trained):
    model, _ = trained
    errs = [quantization_error(model, BitSchedule.uniform(model, b)).sqnr_db for b in (8, 4, 2)]
    assert (errs[0] > errs[1]).all() and (errs[1] > errs[2]).all()
    assert sqnr_db(torch.ones(4), torch.ones(4)) == float("inf")
    assert np.isinf(quantization_error(model, BitSchedule.uniform(model, 32)).sqnr_db).all()


def test_layer_sensitivity(trained):
    model, data = trained
    sens = layer_sensitivity(model, data, bits=1)
    assert sens.layer.tolist() == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    base = sens.float_accuracy.iloc[0]
    assert np.allclose(sens.accuracy_drop, base - sens.accuracy)
    assert (sens.accuracy > 0.5).all()  # BatchNorm re-estimation keeps one 1-bit layer usable
    with pytest.raises(ValueError, match="bits must be below 32"):
        layer_sensitivity(model, data, bits=32)


def _brute_force(d, p, choices, limit):
    best = None
    for bits in itertools.product(sorted(choices, reverse=True), repeat=len(d)):
        if any(a < b for a, b in zip(bits, bits[1:])):
            continue
        mem = float(np.dot(p, bits))
        if mem > limit:
            continue
        cost = float(np.dot(d, np.power(4.0, -np.array(bits, dtype=float))))
        if best is None or (cost, mem) < best[:2]:
            best = (cost, mem, list(bits))
    return best[2]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), L=st.integers(1, 5), budget=st.floats(1.0, 8.0))
def test_allocation_is_optimal_monotone_and_within_budget(seed, L, budget):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 30, L + 1)
    net = nn.Sequential(*[nn.Linear(int(sizes[i]), int(sizes[i + 1])) for i in range(L)])
    fisher = rng.uniform(0, 10, L)
    prof = pd.DataFrame({"layer": [str(i) for i in range(L)], "fisher": fisher})
    s = allocate_bits(prof, net, budget)
    p = np.array([m.weight.numel() for m in net])
    assert all(a >= b for a, b in zip(s.w_bits, s.w_bits[1:]))
    assert average_bits(net, s) <= budget + 1e-9
    assert s.w_bits == _brute_force(difficulty(fisher, "fisher"), p, (1, 2, 4, 8), budget * p.sum() * (1 + 1e-12))


def test_allocation_follows_separability_and_budgets(trained):
    model, data = trained
    prof = separability_profile(model, data, metrics=["fisher", "probe"], n_samples=300)
    two = allocate_bits(prof, model, average_bits(model, "2"))
    less = allocate_bits(prof, model, 0.75 * average_bits(model, "2"))
    assert average_bits(model, two) <= 2 and average_bits(model, less) <= 1.5
    assert two.w_bits[0] >= two.w_bits[-1] and two.w_bits != [2] * 5
    kib = pdbviz.memory_summary(model, BitSchedule.uniform(model, 2)).quantized_weight_kib
    assert allocate_bits(prof, model, f"{kib} KiB") == two
    assert allocate_bits(prof, model, 2, metric="probe").w_bits[0] >= 2
    with pytest.raises(ValueError, match="smallest feasible budget is 1 average bits"):
        allocate_bits(prof, model, 0.5)
    with pytest.raises(ValueError, match="smallest feasible budget is 2 average bits"):
        allocate_bits(prof, model, 1.5, choices=(2, 4))
    with pytest.raises(ValueError, match="budget must be a positive number"):
        allocate_bits(prof, model, "lots")
    with pytest.raises(ValueError, match="metric 'knn' is not a column"):
        allocate_bits(prof, model, 2, metric="knn")
    with pytest.raises(ValueError, match="no 'fisher' value for layers"):
        allocate_bits(prof.iloc[:2], model, 2)


def _circles(package: str) -> list[tuple[str, str]]:
    """Pairs of modules of ``package`` that import each other, directly or through others (function-level imports
    included)."""
    import grimp

    graph = grimp.build_graph("pdbviz")
    modules = graph.find_descendants(package)
    return sorted((a, b) for a in modules for b in graph.find_modules_directly_imported_by(a)
                  if b in modules and graph.find_shortest_chain(importer=b, imported=a))


def test_analysis_modules_import_no_circle_and_names_have_one_meaning():
    assert _circles("pdbviz.analysis") == []
    import pdbviz.analysis as analysis

    assert callable(analysis.allocate) and analysis.allocate is pdbviz.allocate  # a function, not a module
    assert analysis.SEPARABILITY_MEASURES == ("fisher", "probe", "knn", "silhouette") == analysis.METRICS
    assert set(analysis.SEPARABILITY_MEASURES) < set(analysis.SENSITIVITY_METRICS)
    assert analysis.nondominated.__module__ == analysis.pareto_front.__module__
