"""Pairwise interactions of quantization: their definition checked by hand, exact zeros where a layer's
quantization changes nothing, the verdict, the interaction-aware allocation and the heat map."""

import copy
import importlib
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import pdbviz
from pdbviz import build_model, load_dataset
from pdbviz.analysis import allocate, pareto_front
from pdbviz.analysis.interactions import (PAIR_COLUMNS, Interactions, allocate_with_interactions,
                                          interaction_correction, interactions, rerank_front)
from pdbviz.analysis.sensitivity import quantized_at_scale
from pdbviz.analysis.separability import sample_split
from pdbviz.plot.interactions import interactions_figure


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def mlp(digits):
    torch.manual_seed(0)
    return build_model("mlp", digits.input_shape, 10)


def _loss_by_hand(model, X, y, quantize):
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        for name in quantize:
            w = m.get_submodule(name).weight
            w.copy_(quantized_at_scale(w, 1))
        return nn.functional.cross_entropy(m(X), y, reduction="none").double()


def test_interactions_are_the_loss_of_both_minus_each_alone(digits, mlp):
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    r = interactions(mlp, digits, bits=1, n_samples=200)
    assert all(torch.equal(before[k], v) for k, v in mlp.state_dict().items())  # weights restored
    X, y = sample_split(digits, 200, 0, "test")  # the samples interactions() evaluates on
    l0 = _loss_by_hand(mlp, X, y, [])
    assert r.base_loss == pytest.approx(float(l0.mean()), rel=1e-6)
    assert r.n_samples == len(y) and len(r.pairs) == math.comb(len(r.layers), 2)
    for p in r.pairs.itertuples():
        la, lb = _loss_by_hand(mlp, X, y, [p.layer_a]), _loss_by_hand(mlp, X, y, [p.layer_b])
        d = _loss_by_hand(mlp, X, y, [p.layer_a, p.layer_b]) - la - lb + l0
        assert p.interaction == pytest.approx(float(d.mean()), abs=1e-6)
        assert p.se == pytest.approx(float(d.std() / math.sqrt(len(d))), rel=1e-4)
        assert p.both == pytest.approx(p.alone_a + p.alone_b + p.interaction)
        summed = p.alone_a + p.alone_b  # an untrained model: quantizing may lower the loss
        assert p.relative == pytest.approx(p.interaction / summed) if summed > 0 else math.isnan(p.relative)
    m = r.matrix
    assert m.shape == (len(r.layers),) * 2 and np.allclose(m.values, m.values.T, equal_nan=True)
    assert np.isnan(np.diag(m.values)).all()
    everything = _loss_by_hand(mlp, X, y, list(r.layers)) - l0
    assert r.together == pytest.approx(float(everything.mean()), abs=1e-6)


def test_a_layer_already_on_its_grid_interacts_with_nothing(digits, mlp):
    model = copy.deepcopy(mlp)
    first = interactions(model, digits, bits=1, n_samples=100).layers[0]
    with torch.no_grad():
        w = model.get_submodule(first).weight
        w.copy_(0.1 * torch.sign(w))  # 1-bit quantization at its own scale leaves it unchanged
    r_first = interactions(model, digits, bits=1, n_samples=100)
    single = r_first.singles.set_index("layer")
    assert single.increase[first] == 0 and single.se[first] == 0
    touching = r_first.pairs[(r_first.pairs.layer_a == first) | (r_first.pairs.layer_b == first)]
    assert len(touching) == len(r_first.layers) - 1
    assert (touching.interaction == 0).all() and (~touching.significant).all() and (touching.rho == 0).all()


def test_top_k_measures_pairs_among_the_most_sensitive_layers(digits, mlp):
    full = interactions(mlp, digits, bits=2, n_samples=100)
    top = interactions(mlp, digits, bits=2, n_samples=100, top_k=2)
    expected = set(full.singles.nlargest(2, "increase").layer)
    assert set(top.layers) == expected and len(top.pairs) == 1


def test_bits_per_layer_and_layers_left_float(digits, mlp):
    names = list(interactions(mlp, digits, bits=2, n_samples=50).singles.layer)
    r = interactions(mlp, digits, bits={names[0]: 4, names[1]: 32, names[2]: 1}, n_samples=50)
    assert list(r.singles.layer) == [names[0], names[2]] and list(r.singles.bits) == [4, 1]
    assert len(r.pairs) == 1 and r.pairs.bits_a[0] == 4 and r.pairs.bits_b[0] == 1
    schedule = pdbviz.BitSchedule.from_list(names, [4, 32, 1])
    same = interactions(mlp, digits, bits=schedule, n_samples=50)
    assert same.pairs.interaction[0] == pytest.approx(r.pairs.interaction[0])
    text = interactions(mlp, digits, bits=schedule.to_string(mlp), n_samples=50)
    assert list(text.singles.bits) == [4, 1]


def test_larger_models_get_the_pairs_of_their_most_sensitive_layers(digits, mlp, monkeypatch):
    module = importlib.import_module("pdbviz.analysis.interactions")
    monkeypatch.setattr(module, "ALL_PAIRS_UP_TO", 2)  # the MLP's 3 layers count as a large model
    monkeypatch.setattr(module, "DEFAULT_TOP_K", 2)
    r = interactions(mlp, digits, bits=2, n_samples=100)
    assert len(r.singles) == 3 and len(r.layers) == 2 and len(r.pairs) == 1
    assert set(r.layers) == set(r.singles.nlargest(2, "increase").layer)


@pytest.mark.parametrize("kw, err, match", [
    ({"bits": 0}, ValueError, "bits of layer"), ({"bits": True}, TypeError, "bits must be"),
    ({"bits": 2.5}, TypeError, "bits must be"), ({"bits": 2, "top_k": 1}, ValueError, "top_k"),
    ({"bits": {"nope": 2}}, ValueError, "leaves no layer"),
])
def test_bad_arguments_are_refused(digits, mlp, kw, err, match):
    with pytest.raises(err, match=match):
        interactions(mlp, digits, n_samples=20, **kw)


def _result(rows, together, together_se, layers, increases):
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    singles = pd.DataFrame({"layer": layers, "depth": range(len(layers)), "bits": 2, "increase": increases,
                            "se": 0.01})
    return Interactions(pairs, singles, 1.0, together, together_se, 500, tuple(layers))


def _pair(a, b, da, db, i, se, crit=2.0):
    return (a, b, 2, 2, da, db, da + db, da + db + i, i, se, i / se, i / (da + db), i / math.sqrt(da * db),
            abs(i / se) > crit)


def test_the_verdict_reads_the_numbers():
    additive = _result([_pair("a", "b", 0.2, 0.3, 0.001, 0.01)], 0.505, 0.02, ["a", "b"], [0.2, 0.3])
    assert additive.verdict.startswith("additive within noise: quantizing the 2 layers together raises the loss "
                                       "by 0.5050 ± 0.0200 nats against 0.5000")
    assert "0 of 1 pairs" in additive.verdict
    nearly = _result([_pair("a", "b", 0.2, 0.3, 0.03, 0.005)], 0.53, 0.005, ["a", "b"], [0.2, 0.3])
    assert nearly.verdict.startswith("nearly additive (within 10%)") and "1 of 1 pairs" in nearly.verdict
    sup = _result([_pair("a", "b", 0.2, 0.3, 0.2, 0.01)], 0.7, 0.01, ["a", "b"], [0.2, 0.3])
    assert sup.verdict.startswith("super-additive") and "+40% of their summed increases" in sup.verdict
    sub = _result([_pair("a", "b", 0.2, 0.3, -0.2, 0.01)], 0.3, 0.01, ["a", "b"], [0.2, 0.3])
    assert sub.verdict.startswith("sub-additive")


def _two_layers():
    net = nn.Sequential(nn.Linear(10, 10, bias=False), nn.Linear(10, 10, bias=False))
    loss = pd.DataFrame({"layer": ["0"] * 3 + ["1"] * 3, "w_bits": [1, 2, 8] * 2, "a_bits": 32,
                         "loss": [1.0, 0.3, 0.0, 0.5, 0.3, 0.0]})
    return net, loss


def test_a_sub_additive_pair_changes_the_allocation_at_equal_budget():
    net, loss = _two_layers()
    assert allocate(net, loss, 4.5).w_bits == [8, 1]  # additive: 0.5 against 0.6 for 2-2
    # measured: the two layers together cost less than their sum, rho = -0.5
    r = _result([_pair("0", "1", 0.3, 0.3, -0.15, 0.01)], 0.45, 0.01, ["0", "1"], [0.3, 0.3])
    assert interaction_correction(r, loss, {"0": 2, "1": 2}) == pytest.approx(-0.5 * 0.3)
    assert interaction_correction(r, loss, {"0": 8, "1": 1}) == 0  # a layer at 8 bits costs 0 here
    table = rerank_front(pareto_front(net, loss, budget=4.5), loss, r, 4.5)
    assert table.avg_bits.max() <= 4.5
    assert table.set_index("w_bits").corrected_loss[(2, 2)] == pytest.approx(0.45)
    assert allocate_with_interactions(net, loss, r, 4.5).w_bits == [2, 2]
    # within noise (|z| < 2) the correction is left out and the additive choice stands
    noisy = _result([_pair("0", "1", 0.3, 0.3, -0.15, 0.1)], 0.45, 0.1, ["0", "1"], [0.3, 0.3])
    assert allocate_with_interactions(net, loss, noisy, 4.5).w_bits == [8, 1]


def test_the_heat_map_shows_each_pair_once_on_each_side():
    r = _result([_pair("a", "b", 0.2, 0.3, 0.05, 0.01), _pair("a", "c", 0.2, 0.1, -0.01, 0.01),
                 _pair("b", "c", 0.3, 0.1, 0.0, 0.01)], 0.64, 0.01, ["a", "b", "c"], [0.2, 0.3, 0.1])
    fig = interactions_figure(r)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z[0, 1] == z[1, 0] == pytest.approx(0.05) and z[0, 2] == pytest.approx(-0.01)
    assert np.isnan(np.diag(z)).all() and fig.data[0].zmid == 0
    assert fig.data[0].text[0][1].endswith("*") and not fig.data[0].text[0][2].endswith("*")
    assert r.verdict.startswith("nearly additive") and "nearly additive (within 10%)" in fig.layout.title.text
    rel = interactions_figure(r.pairs, value="relative")
    assert np.asarray(rel.data[0].z, dtype=float)[0, 1] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="value must be one of"):
        interactions_figure(r, value="nope")


def test_interactions_is_a_top_level_name():
    assert pdbviz.interactions is interactions and pdbviz.Interactions is Interactions
