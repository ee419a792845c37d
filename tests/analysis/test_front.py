"""The allocator's front is exact: equal to brute force on random instances, under every kind of budget."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pdbviz.analysis import (allocate, interpolate_cost, metric_cost, nondominated, pareto_front, parse_budgets,
                             predicted_loss)
from pdbviz.quant import discover, memory_summary
from pdbviz.quant.protocol import ModelInfo

W_CHOICES = (1, 2, 3, 4, 8, 32)
A_CHOICES = (2, 4, 8, 32)


def _net(sizes):
    net = nn.Sequential(*[nn.Linear(int(a), int(b), bias=False) for a, b in zip(sizes, sizes[1:])])
    net.pdbviz_info = ModelInfo(input_shape=(int(sizes[0]),))
    return net


@st.composite
def instances(draw):
    L = draw(st.integers(1, 4))
    exact = draw(st.booleans())  # losses that sum exactly, so that ties happen; or any floats
    sizes = draw(st.lists(st.integers(1, 12), min_size=L + 1, max_size=L + 1))
    rows, lat = [], []
    for layer in range(L):
        ws = draw(st.lists(st.sampled_from(W_CHOICES), min_size=1, max_size=4, unique=True))
        as_ = draw(st.lists(st.sampled_from(A_CHOICES), min_size=1, max_size=3, unique=True))
        if 32 not in as_:
            as_.append(32)
        for w in ws:
            for a in as_:
                rows.append((str(layer), w, a, draw(st.integers(0, 40)) / 8 if exact else
                             draw(st.floats(0, 5, allow_subnormal=False))))
                lat.append((str(layer), w, a, float(draw(st.integers(1, 20)))))
    loss = pd.DataFrame(rows, columns=["layer", "w_bits", "a_bits", "loss"])
    latency = pd.DataFrame(lat, columns=["layer", "w_bits", "a_bits", "latency"])
    return sizes, loss, latency


def _brute(net, loss, latency, primary, limits, monotone):
    layout = discover(net)
    names = layout.names
    total = sum(e.numel for e in layout.entries)
    per_layer = []
    for i, e in enumerate(layout.entries):
        rows = loss[loss.layer == e.name]
        opts = [(int(r.w_bits), int(r.a_bits), float(r.loss)) for r in rows.itertuples()
                if i > 0 or int(r.a_bits) == 32]
        per_layer.append([(w, a, lv, e.numel * w, e.macs * w * a,
                           float(latency[(latency.layer == e.name) & (latency.w_bits == w)
                                         & (latency.a_bits == a)].latency.iloc[0])) for w, a, lv in opts])
    cap = {"memory": math.inf, "bops": math.inf, "latency": math.inf}
    for k, v in limits.items():
        key = {"bits": "memory", "kib": "memory", "bops": "bops", "latency": "latency"}[k]
        cap[key] = min(cap[key], v * total if k == "bits" else v * 8192 if k == "kib" else v)
    points = []
    for combo in itertools.product(*per_layer):
        if monotone and any(x[0] < y[0] for x, y in zip(combo, combo[1:])):
            continue
        cost = {"memory": sum(c[3] for c in combo), "bops": sum(c[4] for c in combo),
                "latency": sum(c[5] for c in combo)}
        if any(cost[k] > cap[k] * (1 + 1e-12) for k in cost if k != primary):
            continue
        points.append((cost[primary], sum(c[2] for c in combo), cost, combo))
    if not points:
        return None
    keep = nondominated(np.array([[p[0], p[1]] for p in points]))
    return [points[i] for i in keep], names, points


@settings(max_examples=80, deadline=None)
@given(inst=instances(), primary=st.sampled_from(["memory", "bops", "latency"]), monotone=st.booleans(),
       budget_keys=st.sets(st.sampled_from(["bits", "bops", "latency"]), max_size=2),
       fractions=st.lists(st.floats(0.1, 1.0), min_size=4, max_size=4))
def test_front_equals_brute_force(inst, primary, monotone, budget_keys, fractions):
    sizes, loss, latency = inst
    net = _net(sizes)
    maxima = {"bits": 32.0, "bops": float(sum(e.macs for e in discover(net).entries)) * 32 * 32,
              "latency": float(latency.groupby("layer").latency.max().sum())}
    limits = {k: maxima[k] * f for k, f in zip(sorted(budget_keys), fractions)}
    expected = _brute(net, loss, latency, primary, limits, monotone)
    if expected is None:
        with pytest.raises(ValueError, match="cannot be met|non-increasing"):
            pareto_front(net, loss, primary, limits, monotone=monotone, latency=latency)
        return
    points, names, everything = expected
    front = pareto_front(net, loss, primary, limits, monotone=monotone, latency=latency)
    # one point under a budget on the primary cost too: allocate's branch and bound equals brute force
    key = {"memory": "bits", "bops": "bops", "latency": "latency"}[primary]
    cap = maxima[key] * fractions[3]
    total = sum(e.numel for e in discover(net).entries)
    within = [p[1] for p in everything if p[0] <= (cap * total if key == "bits" else cap) * (1 + 1e-12)]
    if not within:
        with pytest.raises(ValueError):
            allocate(net, loss, {**limits, key: cap}, primary=primary, monotone=monotone, latency=latency)
    else:
        sched = allocate(net, loss, {**limits, key: cap}, primary=primary, monotone=monotone, latency=latency)
        table = loss.set_index(["layer", "w_bits", "a_bits"]).loss
        assert sum(table[(n, sp.w_bits, sp.a_bits)] for n, sp in sched.items()) == min(within)
    column = {"memory": "weight_bits", "bops": "bops", "latency": "latency"}[primary]
    got = list(zip(front.table[column], front.table.loss))
    assert got == [(p[0], p[1]) for p in points]
    for row in front.table.itertuples():  # each point's schedule really has its costs and meets the budgets
        sched = front.schedule(row.Index)
        assert sched.w_bits == list(row.w_bits) and sched.layers == names
        summary = memory_summary(net, sched)
        assert summary.quantized_weight_kib == pytest.approx(row.weight_kib)
        assert summary.bops == pytest.approx(row.bops)
        if monotone:
            assert all(a >= b for a, b in zip(row.w_bits, row.w_bits[1:]))
        assert row.a_bits[0] == 32


@settings(max_examples=40, deadline=None)
@given(inst=instances(), fraction=st.floats(0.05, 1.0), monotone=st.booleans())
def test_choose_is_the_least_loss_within_the_budget(inst, fraction, monotone):
    sizes, loss, latency = inst
    net = _net(sizes)
    if _brute(net, loss, loss.rename(columns={"loss": "latency"}), "memory", {}, monotone) is None:
        with pytest.raises(ValueError, match="non-increasing"):
            pareto_front(net, loss, "memory", monotone=monotone)
        return
    front = pareto_front(net, loss, "memory", monotone=monotone)
    budget = {"bits": 32 * fraction}
    limit = 32 * fraction * front._total_params
    feasible = front.table[front.table.weight_bits <= limit * (1 + 1e-12)]
    if feasible.empty:
        with pytest.raises(ValueError, match="smallest feasible budget is"):
            front.choose(budget)
        return
    sched = front.choose(budget)
    best = feasible.loss.min()
    assert front.table.loss.iloc[front.index(budget)] == best
    assert allocate(net, loss, budget, monotone=monotone) == sched
    assert sched.w_bits == list(feasible[feasible.loss == best].w_bits.iloc[0])


@settings(max_examples=60, deadline=None)
@given(pts=st.lists(st.lists(st.integers(0, 5), min_size=4, max_size=4), min_size=0, max_size=60),
       d=st.integers(1, 4))
def test_nondominated_equals_pairwise_definition(pts, d):
    P = np.array([p[:d] for p in pts], dtype=float).reshape(len(pts), d)
    keep = set(nondominated(P).tolist())
    for i in range(len(P)):
        dominated = any((P[j] <= P[i]).all() and ((P[j] < P[i]).any() or j < i) for j in range(len(P)) if j != i)
        assert (i not in keep) == dominated


def test_cdq_branch_on_many_points():
    rng = np.random.default_rng(0)
    P = rng.integers(0, 30, size=(700, 3)).astype(float)
    keep = set(nondominated(P).tolist())
    for i in range(len(P)):
        le = (P <= P[i]).all(1)
        le[i] = False
        strictly = le & ((P < P[i]).any(1) | (np.arange(len(P)) < i))
        assert (i not in keep) == bool(strictly.any())


def test_front_of_a_small_model_by_hand():
    net = _net([10, 10, 10])
    loss = pd.DataFrame({"layer": ["0", "0", "1", "1"], "w_bits": [1, 8, 1, 8], "a_bits": 32,
                         "loss": [1.0, 0.0, 0.5, 0.0]})
    front = pareto_front(net, loss)
    assert front.table.w_bits.tolist() == [(1, 1), (8, 1), (8, 8)]
    assert front.table.avg_bits.tolist() == [1.0, 4.5, 8.0]
    assert front.table.bops.tolist() == [100 * 32 * 2, 100 * 8 * 32 + 100 * 32, 100 * 8 * 32 * 2]
    assert front.choose("4.5 bits").w_bits == [8, 1] and front.choose(4.4).w_bits == [1, 1]
    assert pareto_front(net, loss, monotone=True).table.w_bits.tolist() == [(1, 1), (8, 1), (8, 8)]
    inc = loss.assign(loss=[0.0, 0.0, 1.0, 0.0])  # the second layer needs the bits: monotone must pay for both
    assert pareto_front(net, inc, monotone=True).table.w_bits.tolist() == [(1, 1), (8, 8)]
    assert pareto_front(net, inc).table.w_bits.tolist() == [(1, 1), (1, 8)]
    # inputs: the network's own input stays at 32 bits; BOPs as the primary cost
    both = pd.DataFrame([(str(l), w, a, (l + 1) * (4.0 ** -w + 4.0 ** -a if a < 32 else 4.0 ** -w))
                         for l in range(2) for w in (2, 8) for a in (4, 32)],
                        columns=["layer", "w_bits", "a_bits", "loss"])
    f = pareto_front(net, both, "bops")
    assert all(a[0] == 32 for a in f.table.a_bits) and {a[1] for a in f.table.a_bits} == {4, 32}
    assert f.table.bops.is_monotonic_increasing and f.table.loss.is_monotonic_decreasing
    allowed = pareto_front(net, both, "bops", allowed={"1": [(2, 4), (8, 4)]})
    assert {a[1] for a in allowed.table.a_bits} == {4}


def test_latency_budget_and_primary():
    net = _net([10, 10, 10])
    loss = pd.DataFrame({"layer": ["0", "0", "1", "1"], "w_bits": [1, 8, 1, 8], "a_bits": 32,
                         "loss": [1.0, 0.0, 0.5, 0.0]})
    lat = loss.drop(columns="loss").assign(latency=[1.0, 3.0, 1.0, 5.0])
    front = pareto_front(net, loss, "latency", latency=lat)
    assert front.table.latency.tolist() == [2.0, 4.0, 8.0]
    assert allocate(net, loss, {"latency": 4.0}, latency=lat).w_bits == [8, 1]
    assert allocate(net, loss, {"latency": 4.0, "bits": 8}, latency=lat).w_bits == [8, 1]
    with pytest.raises(ValueError, match="needs a latency table"):
        pareto_front(net, loss, "latency")
    with pytest.raises(ValueError, match="no rows for layer '1'"):
        pareto_front(net, loss, "latency", latency=lat.iloc[:3])


def test_front_errors_name_the_problem():
    net = _net([10, 10, 10])
    loss = pd.DataFrame({"layer": ["0", "1"], "w_bits": [2, 2], "a_bits": 32, "loss": [1.0, 0.5]})
    with pytest.raises(ValueError, match="primary must be one of"):
        pareto_front(net, loss, "speed")
    with pytest.raises(TypeError, match="loss must be a DataFrame"):
        pareto_front(net, {"0": 1.0})
    with pytest.raises(ValueError, match="lacks columns"):
        pareto_front(net, loss.drop(columns="a_bits"))
    with pytest.raises(ValueError, match="does not have"):
        pareto_front(net, loss.assign(layer=["0", "fc9"]))
    with pytest.raises(ValueError, match="NaN"):
        pareto_front(net, loss.assign(loss=[1.0, np.nan]))
    with pytest.raises(ValueError, match="w_bits must be an integer in"):
        pareto_front(net, loss.assign(w_bits=[2, 9]))
    with pytest.raises(ValueError, match="several rows"):
        pareto_front(net, pd.concat([loss, loss]))
    with pytest.raises(ValueError, match="'0' has no allowed choice: its input cannot be quantized"):
        pareto_front(net, loss.assign(a_bits=4))
    with pytest.raises(ValueError, match="cannot be met"):
        pareto_front(net, loss, budget={"bops": 10.0})
    with pytest.raises(ValueError, match="smallest feasible budget is 2 average bits"):
        pareto_front(net, loss).choose(1.5)
    with pytest.raises(ValueError, match="must limit the front's primary cost"):
        pareto_front(net, loss).choose({"bops": 1e9})
    with pytest.raises(ValueError, match="budget keys must be among"):
        parse_budgets({"watts": 3})
    with pytest.raises(ValueError, match="must be a positive number"):
        parse_budgets({"bops": -1})
    with pytest.raises(ValueError, match="budget must limit memory"):
        allocate(net, loss, None)
    with pytest.raises(ValueError, match="i must be a point of the front"):
        pareto_front(net, loss).schedule(5)
    no_macs = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
    with pytest.raises(ValueError, match="BOPs need the MACs"):
        pareto_front(no_macs, loss, "bops")


def test_parse_budgets_forms():
    assert parse_budgets(1.5) == {"bits": 1.5}
    assert parse_budgets("40 KiB") == {"kib": 40.0}
    assert parse_budgets("2e8 BOPs") == {"bops": 2e8}
    assert parse_budgets("1.5 GBOPs") == {"bops": 1.5e9}
    assert parse_budgets(["1 bits", {"latency": 2}]) == {"bits": 1.0, "latency": 2.0}
    assert parse_budgets(None) == {}


def test_predicted_loss_conversions_and_interpolation():
    assert interpolate_cost({2: 1.0, 8: 4.0 ** -6}, 4) == pytest.approx(4.0 ** -2)
    assert interpolate_cost({2: 1.0, 4: 0.0}, 3) == 0.5  # a zero cost: linear
    assert interpolate_cost({2: 1.0}, 1) == 4.0 and interpolate_cost({2: 1.0}, 32) == 0.0
    assert metric_cost("hawq", [2.0]).tolist() == [1.0]
    assert metric_cost("cka", [0.75]).tolist() == [0.25]
    assert metric_cost("ablation", [-0.01]).tolist() == [0.0]
    frame = pd.DataFrame({
        "layer": ["a", "a", "b", "b", "b", "b"], "depth": [0, 0, 1, 1, 1, 1], "metric": "hawq",
        "operand": ["weight", "weight", "weight", "weight", "input", "input"],
        "bits": [2, 8, 2, 8, 2, 8], "value": [4.0, 2.0, 8.0, 0.5, 6.0, 0.2]})
    t = predicted_loss(frame, "hawq", w_bits=(2, 8, 32), a_bits=(2, 32))
    assert set(t[t.layer == "a"].a_bits) == {32}  # no input rows: the input stays float
    row = t[(t.layer == "b") & (t.w_bits == 2) & (t.a_bits == 2)].loss.item()
    assert row == pytest.approx(8.0 / 2 + 6.0 / 2)
    assert t[(t.layer == "b") & (t.w_bits == 32) & (t.a_bits == 32)].loss.item() == 0.0
    sep = pd.DataFrame({"layer": ["a", "b", "logits"], "fisher": [0.5, 2.0, 9.0]})
    s = predicted_loss(sep, "fisher", w_bits=(1, 2), a_bits=(32,))
    assert s.loss.tolist() == [0.25, 0.0625, 0.25 * 0.25, 0.25 * 0.0625]  # d = (1, 1/4) times 4^-w
    with pytest.raises(ValueError, match="no input rows of 'kl'"):
        predicted_loss(frame.assign(metric="kl", operand="weight"), "kl", a_bits=(4,))
    with pytest.raises(ValueError, match="unknown metric"):
        predicted_loss(frame, "hessian")
    with pytest.raises(ValueError, match="no 'kl' rows for layers"):
        predicted_loss(frame.assign(metric="kl"), "kl", layers=["z"])


def test_budget_bounds_keep_the_front_exact(monkeypatch):
    """The Lagrangian bounds drop states early; without them the same front comes out (float losses)."""
    import pdbviz.analysis._bounds as bounds

    rng = np.random.default_rng(1)
    net = _net([12, 10, 9, 11, 8, 7, 6])
    rows = [(str(l), w, a, d * 4.0 ** -w + (e * 4.0 ** -a if a < 32 else 0.0))
            for l, (d, e) in enumerate(rng.uniform(0.1, 1, (6, 2))) for w in range(1, 9) for a in (2, 4, 8, 32)
            if l > 0 or a == 32]
    loss = pd.DataFrame(rows, columns=["layer", "w_bits", "a_bits", "loss"])
    cases = [("memory", {"bops": 5e4}, False), ("bops", {"bits": 4}, True), ("memory", {"bops": 3e4}, True)]
    fronts = [pareto_front(net, loss, p, b, monotone=m).table for p, b, m in cases]
    primary_budgets = [{"bits": 2.5}, {"bops": 6e4}, {"bits": 3}]
    best = [allocate(net, loss, {**b, **pb}, monotone=m) for (p, b, m), pb in zip(cases, primary_budgets)]
    monkeypatch.setattr(bounds.Bounds, "keep", lambda self, l, c, f, single=False: np.ones(len(f), dtype=bool))
    for (p, b, m), got, pb, sched in zip(cases, fronts, primary_budgets, best):
        front = pareto_front(net, loss, p, b, monotone=m)
        want = front.table
        assert got.loss.tolist() == want.loss.tolist() and got.weight_bits.tolist() == want.weight_bits.tolist()
        assert len(got) > 20
        i = front.index(pb)  # branch and bound finds the same least loss within both budgets
        table = loss.set_index(["layer", "w_bits", "a_bits"]).loss
        got_loss = sum(table[(n, s.w_bits, s.a_bits)] for n, s in sched.items())
        assert got_loss == pytest.approx(want.loss.iloc[i], rel=1e-12)
        summary = memory_summary(net, sched)
        assert summary.avg_bits <= pb.get("bits", 32) and summary.bops <= {**b, **pb}.get("bops", math.inf)
