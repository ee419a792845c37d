"""Sensitivity metrics against analytic cases and against the slow way (a quantized copy of the model)."""

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import pdbviz
from pdbviz.analysis import (METRIC_INFO, SENSITIVITY_METRICS, allocate, cka_profile, hessian_trace, layer_sensitivity,
                             linear_cka, metric_cost, metric_info, pareto_front, predicted_loss, quantized_at_scale,
                             register_metric, sensitivity_metrics, separability_profile, unregister_metric)
from pdbviz.quant import activation_quantizer
from pdbviz.quant.protocol import ModelInfo


def _data(n=96, d=6, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return X, y


def _value(frame, metric, layer, operand="weight", bits=None):
    rows = frame[(frame.metric == metric) & (frame.layer == layer) & (frame.operand == operand)]
    if bits is not None:
        rows = rows[rows.bits == bits]
    return float(rows.value.item())


def _mse(z, y):
    return ((z - F.one_hot(y, z.shape[1]).to(z.dtype)) ** 2).sum(1).mean()


# -- linear CKA ---------------------------------------------------------------------------------------------------
def test_linear_cka_identity_invariances_and_both_forms():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 7))
    Q, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka(X, X @ Q) == pytest.approx(1.0, abs=1e-12)       # orthogonal transform
    assert linear_cka(X, 5.0 * X + 3.0) == pytest.approx(1.0, abs=1e-12)  # isotropic scaling, shift
    Y = rng.normal(size=(40, 3))
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    by_hand = np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
    assert linear_cka(X, Y) == pytest.approx(by_hand, rel=1e-12)
    wide = rng.normal(size=(10, 300))  # more features than samples: the Gram form
    wide2 = wide @ rng.normal(size=(300, 200))
    K, L = (wide - wide.mean(0)) @ (wide - wide.mean(0)).T, (wide2 - wide2.mean(0)) @ (wide2 - wide2.mean(0)).T
    assert linear_cka(wide, wide2) == pytest.approx((K * L).sum() / (np.linalg.norm(K) * np.linalg.norm(L)))
    S = np.diag([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])  # anisotropic scaling changes it
    assert linear_cka(X, X @ S) < 1 - 1e-3
    assert math.isnan(linear_cka(np.ones((5, 2)), X[:5]))
    with pytest.raises(ValueError, match="same samples"):
        linear_cka(X, Y[:5])
    with pytest.raises(ValueError, match="2-D feature matrix"):
        linear_cka(np.zeros((2, 2, 2)), X[:2])


def test_cka_profile_is_one_for_the_same_model_and_lower_when_quantized():
    X, y = _data(80, 16, 4)
    net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    same = cka_profile(net, copy.deepcopy(net), (X, y), n_samples=None)
    assert same.layer.tolist() == ["0", "2", "4", "logits"]
    assert np.allclose(same.cka, 1.0)
    low = cka_profile(net, pdbviz.quantize(net, "1"), (X, y), n_samples=None)
    assert low.cka.iloc[0] == pytest.approx(1.0) and (low.cka.iloc[1:] < 0.999).all()


# -- Hessian trace -------------------------------------------------------------------------------------------------
def test_hessian_trace_of_least_squares_is_exact_for_one_input_feature():
    """L = mean_n sum_c (w_c x_n - t_nc)^2: H = (2/N) sum x_n^2 I, diagonal, so every Rademacher probe is exact."""
    X, y = _data(60, 1, 3)
    net = nn.Sequential(nn.Linear(1, 3, bias=False))
    frame = hessian_trace(net, (X, y), n_probes=6, n_samples=None, loss=_mse)
    assert frame.trace.item() == pytest.approx(2 * 3 * float((X ** 2).mean()), rel=1e-6)
    assert frame.numel.item() == 3 and frame.operand.item() == "weight"


def test_hessian_trace_of_least_squares_matches_within_its_standard_error():
    X, y = _data(400, 5, 3)
    net = nn.Sequential(nn.Linear(5, 3, bias=False))
    frame = hessian_trace(net, (X, y), n_probes=400, n_samples=None, loss=_mse)
    exact = 2 * 3 * float((X ** 2).sum(1).mean())
    assert abs(frame.trace.item() - exact) < 5 * frame.trace_se.item()
    assert frame.trace_se.item() < 0.1 * exact


def test_input_hessian_trace_and_hawq():
    """The Hessian of least squares in the second layer's input is 2 W2^T W2 per sample: its trace is 2 ||W2||^2.

    One probe covers every block at once, so the other blocks add variance (no bias): within a few standard errors.
    """
    X, y = _data(400, 4, 4)
    net = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.diag(torch.tensor([0.5, -1.0, 2.0, 1.5])))
    frame = hessian_trace(net, (X, y), n_probes=400, inputs=True, n_samples=None, loss=_mse)
    inp = frame[frame.operand == "input"]
    assert inp.layer.tolist() == ["1"]  # the network's own input is not quantized
    assert abs(inp.trace.item() - 2 * float((net[1].weight.detach() ** 2).sum())) < 5 * inp.trace_se.item()
    assert inp.trace_se.item() < 0.1 * inp.trace.item() and inp.numel.item() == 400 * 4
    hawq = sensitivity_metrics(net, (X, y), metrics="hawq", bits=(2,), a_bits=(4,), n_samples=None,
                               n_probes=400, loss=_mse)
    x = net[0](X).detach()
    err = float((activation_quantizer("dorefa")(4)(x) - x).pow(2).sum())
    assert _value(hawq, "hawq", "1", "input", 4) == pytest.approx(inp.trace.item() / (400 * 4) * err, rel=1e-6)
    w = net[1].weight.detach()
    trace_w = frame[(frame.operand == "weight") & (frame.layer == "1")].trace.item()
    omega = trace_w / 16 * float((quantized_at_scale(w, 2) - w).pow(2).sum())
    assert _value(hawq, "hawq", "1", "weight", 2) == pytest.approx(omega, rel=1e-6)


# -- one layer quantized: the values of a hand-built quantized copy --------------------------------------------------
class Residual(nn.Module):
    """In-place additions and activations on tensors that earlier layers produced."""

    def __init__(self):
        super().__init__()
        self.fc1, self.bn1 = nn.Linear(6, 8), nn.BatchNorm1d(8)
        self.fc2, self.bn2 = nn.Linear(8, 8), nn.BatchNorm1d(8)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(8, 3)
        self.pdbviz_info = ModelInfo(input_shape=(6,))

    def forward(self, x):
        h = self.relu(self.bn1(self.fc1(x)))
        out = self.bn2(self.fc2(h))
        out += h
        return self.head(self.relu(out))


def _trained_residual():
    torch.manual_seed(0)
    net = Residual()
    X, y = _data(128, 6, 3)
    net.train()
    for m in (net.bn1, net.bn2):
        m.momentum = None
    with torch.no_grad():
        net(X)
    return net.eval(), X, y


def _by_hand(net, X, y, layer, operand, bits):
    """Logits with one layer quantized: a deep copy with the weight replaced, or a hook on the input."""
    q = copy.deepcopy(net)
    module = q.get_submodule(layer)
    if operand == "weight":
        with torch.no_grad():
            module.weight.copy_(quantized_at_scale(module.weight, bits))
    else:
        aq = activation_quantizer("dorefa")(bits)
        module.register_forward_pre_hook(lambda m, a: (aq(a[0]),))
    with torch.no_grad():
        return q(X)


def test_network_metrics_equal_a_quantized_copy():
    net, X, y = _trained_residual()
    frame = sensitivity_metrics(net, (X, y), metrics=["sqnr", "kl", "ablation", "loss_increase"], bits=(1, 3),
                                a_bits=(2,), n_samples=None, batch_size=40)
    with torch.no_grad():
        z = net(X)
    p = F.log_softmax(z.double(), 1)
    for layer in ("fc1", "fc2", "head"):
        for operand, bits in [("weight", 1), ("weight", 3), ("input", 2)]:
            if operand == "input" and layer == "fc1":
                assert frame[(frame.layer == "fc1") & (frame.operand == "input")].empty
                continue
            zq = _by_hand(net, X, y, layer, operand, bits).double()
            sqnr = 10 * math.log10(float((z.double() ** 2).sum() / ((z - zq) ** 2).sum()))
            kl = float((p.exp() * (p - F.log_softmax(zq, 1))).sum(1).mean())
            drop = float((z.argmax(1) == y).double().mean() - (zq.argmax(1) == y).double().mean())
            inc = float(F.cross_entropy(zq, y) - F.cross_entropy(z.double(), y))
            assert _value(frame, "sqnr", layer, operand, bits) == pytest.approx(sqnr, abs=1e-6)
            assert _value(frame, "kl", layer, operand, bits) == pytest.approx(kl, rel=1e-6, abs=1e-12)
            assert _value(frame, "ablation", layer, operand, bits) == pytest.approx(drop, abs=1e-12)
            assert _value(frame, "loss_increase", layer, operand, bits) == pytest.approx(inc, rel=1e-5, abs=1e-9)
    assert net.training is False and net.fc1.weight.grad is None  # the model is left as it was


class InPlaceBlocks(nn.Module):
    """Convolutions with the in-place patterns of torchvision's ResNets (ReLU(inplace=True), ``out += identity``),
    and a module that changes its own input in place before the caller reads that input again (called through its
    ``forward``, as some models call their blocks)."""

    class Shift(nn.Module):
        def forward(self, x):
            return x.add_(0.25)

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.shift = self.Shift()
        self.conv3 = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 3)
        self.pdbviz_info = ModelInfo(input_shape=(2, 6, 6))

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(h))
        out += h
        out = self.relu(out)
        s = self.shift.forward(out)  # changes out in place
        return self.head((self.conv3(s) + out).mean((2, 3)))


def _in_place_net():
    torch.manual_seed(0)
    net = InPlaceBlocks()
    X = torch.randn(60, 2, 6, 6)
    y = torch.randint(0, 3, (60,))
    for m in (net.bn1, net.bn2):
        m.momentum = None
    net.train()
    with torch.no_grad():
        net(X.clone())
    return net.eval(), X, y


def test_network_metrics_copy_recorded_outputs_only_when_in_place_ops_change_them(monkeypatch):
    """Values equal a quantized copy's; outputs are copied only when later code changes them in place."""
    import pdbviz.analysis._record as record

    copies = []
    real = record.cloned
    monkeypatch.setattr(record, "cloned", lambda tree: copies.append(1) or real(tree))
    metrics = ["sqnr", "kl", "ablation", "loss_increase"]
    plain = pdbviz.build_model("resnet20", (3, 8, 8), 3, width=0.25)  # no in-place operation
    Xp, yp = torch.randn(24, 3, 8, 8), torch.randint(0, 3, (24,))
    frame = sensitivity_metrics(plain, (Xp, yp), metrics=metrics, bits=(2,), layers=["stage2.0.conv2", "fc"],
                                n_samples=None, batch_size=12)
    assert copies == [] and len(frame) == 8
    net, X, y = _in_place_net()
    frame = sensitivity_metrics(net, (X.clone(), y), metrics=metrics, bits=(1, 3), a_bits=(2,), n_samples=None,
                                batch_size=30)
    assert copies  # the outputs that ReLU(inplace=True), += and the shift change are copied
    halves = [slice(0, 30), slice(30, 60)]  # the reference takes the same batches (float32 sums depend on them)
    with torch.no_grad():
        z = torch.cat([net(X[h].clone()) for h in halves]).double()
    p = F.log_softmax(z, 1)
    for layer in ("conv1", "conv2", "conv3", "head"):
        for operand, bits in [("weight", 1), ("weight", 3), ("input", 2)]:
            if operand == "input" and layer == "conv1":
                continue
            zq = torch.cat([_by_hand(net, X[h].clone(), y, layer, operand, bits) for h in halves]).double()
            sqnr = 10 * math.log10(float((z ** 2).sum() / ((z - zq) ** 2).sum()))
            kl = float((p.exp() * (p - F.log_softmax(zq, 1))).sum(1).mean())
            drop = float((z.argmax(1) == y).double().mean() - (zq.argmax(1) == y).double().mean())
            inc = float(F.cross_entropy(zq, y) - F.cross_entropy(z, y))
            assert _value(frame, "sqnr", layer, operand, bits) == pytest.approx(sqnr, abs=1e-6)
            assert _value(frame, "kl", layer, operand, bits) == pytest.approx(kl, rel=1e-6, abs=1e-12)
            assert _value(frame, "ablation", layer, operand, bits) == pytest.approx(drop, abs=1e-12)
            assert _value(frame, "loss_increase", layer, operand, bits) == pytest.approx(inc, rel=1e-5, abs=1e-9)


def test_a_registered_metric_reaches_sensitivity_metrics_predicted_loss_and_the_front():
    """Two toy metrics, registered here and nowhere else: a network one and a local one."""
    net, X, y = _trained_residual()
    register_metric("logit_l1", scope="network", higher="more sensitive", formula="mean sum |z - z_b|",
                    cost="twice the value", reference="a test", to_cost=lambda v: 2 * v,
                    batch=lambda b: float((b.z64 - b.zq).abs().sum()), value=lambda s, n: sum(s) / n)
    register_metric("delta_energy", scope="local", higher="more sensitive", formula="mean sum (Y - Y_b)^2",
                    cost="the value", reference="a test", to_cost=lambda v: v,
                    batch=lambda b: float(b.D.double().pow(2).sum()), value=lambda s, n: sum(s) / n)
    try:
        assert {"logit_l1", "delta_energy"} <= set(SENSITIVITY_METRICS) and "logit_l1" in METRIC_INFO
        assert metric_info().set_index("name").loc["delta_energy", "scope"] == "local"
        frame = sensitivity_metrics(net, (X, y), metrics=["logit_l1", "delta_energy", "kl"], bits=(1, 4),
                                    n_samples=None, batch_size=50)
        with torch.no_grad():
            z = net(X)
            h = net.relu(net.bn1(net.fc1(X)))
        for layer in ("fc1", "fc2", "head"):
            for bits in (1, 4):
                zq = _by_hand(net, X, y, layer, "weight", bits)
                want = float((z.double() - zq.double()).abs().sum(1).mean())
                assert _value(frame, "logit_l1", layer, "weight", bits) == pytest.approx(want, rel=1e-6)
        W = net.fc2.weight.detach()
        D = h @ (W - quantized_at_scale(W, 4)).T
        assert _value(frame, "delta_energy", "fc2", "weight", 4) == pytest.approx(float(D.pow(2).sum(1).mean()),
                                                                                rel=1e-5)
        assert metric_cost("logit_l1", [0.5]).tolist() == [1.0]
        loss = predicted_loss(frame, "logit_l1", w_bits=(1, 4))
        by_layer = loss.set_index(["layer", "w_bits"]).loss
        assert by_layer[("fc2", 4)] == pytest.approx(2 * _value(frame, "logit_l1", "fc2", "weight", 4))
        front = pareto_front(net, loss)
        assert front.table.loss.iloc[-1] == pytest.approx(sum(by_layer[(n, 4)] for n in ("fc1", "fc2", "head")))
        assert allocate(net, loss, 4).w_bits == [4, 4, 4]
    finally:
        unregister_metric("logit_l1")
        unregister_metric("delta_energy")
    assert "logit_l1" not in SENSITIVITY_METRICS
    with pytest.raises(ValueError, match="unknown metric 'logit_l1'"):
        predicted_loss(frame, "logit_l1")
    with pytest.raises(ValueError, match="a metric 'kl' is registered already"):
        register_metric("kl", scope="network", higher="more sensitive", formula="", cost="", reference="",
                        to_cost=abs, batch=abs, value=abs)
    with pytest.raises(TypeError, match="needs callables batch"):
        register_metric("nothing", scope="local", higher="more sensitive", formula="", cost="", reference="",
                        to_cost=abs)


def test_output_error_and_cka_of_a_last_layer_by_formula():
    """For the layer that makes the logits, g = softmax(z) - onehot(y) and Y - Y_b = x (W - W_b)^T."""
    X, y = _data(64, 5, 4)
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(5, 4))
    frame = sensitivity_metrics(net, (X, y), metrics=["output_error", "cka"], bits=(2,), n_samples=None,
                                batch_size=20)
    W = net[0].weight.detach()
    with torch.no_grad():
        z = net(X)
        g = F.softmax(z, 1) - F.one_hot(y, 4)
        D = X @ (W - quantized_at_scale(W, 2)).T
    assert _value(frame, "output_error", "0", "weight", 2) == pytest.approx(float((g ** 2 * D ** 2).sum(1).mean()),
                                                                            rel=1e-5)
    assert _value(frame, "cka", "0", "weight", 2) == pytest.approx(linear_cka(z, z - D), rel=1e-9)


def test_output_error_through_a_residual_model_uses_each_layers_output_gradient():
    net, X, y = _trained_residual()
    frame = sensitivity_metrics(net, (X, y), metrics="output_error", bits=(2,), n_samples=None, batch_size=50)
    Y = {}
    net.fc2.register_forward_hook(lambda m, a, out: Y.update(out=out))
    z = net(X)
    (g,) = torch.autograd.grad(F.cross_entropy(z, y, reduction="sum"), Y["out"])
    h = net.relu(net.bn1(net.fc1(X))).detach()
    W = net.fc2.weight.detach()
    D = h @ (W - quantized_at_scale(W, 2)).T
    assert _value(frame, "output_error", "fc2", "weight", 2) == pytest.approx(float((g ** 2 * D ** 2).sum(1).mean()),
                                                                              rel=1e-5)


# -- the frame, separability and the ablation ------------------------------------------------------------------------
def test_frame_layout_directions_and_reuse_of_existing_measures(trained):
    model, data = trained
    frame = sensitivity_metrics(model, data, metrics=["fisher", "knn", "kl"], bits=(2, 4), n_samples=200)
    assert frame.columns.tolist() == ["layer", "depth", "metric", "operand", "bits", "value"]
    sep = frame[frame.metric == "fisher"]
    assert sep.bits.isna().all() and sep.operand.isna().all()
    prof = separability_profile(model, data, metrics=["fisher", "knn"], n_samples=200)
    assert np.allclose(sep.value, prof[prof.layer != "logits"].fisher)
    kl = frame[frame.metric == "kl"]
    assert kl.bits.tolist() == [2, 4] * 5 and kl.depth.tolist() == sorted(kl.depth.tolist())
    assert (kl[kl.bits == 2].value.to_numpy() > kl[kl.bits == 4].value.to_numpy()).all()
    info = metric_info().set_index("name")
    assert set(info.index) == set(SENSITIVITY_METRICS) == set(METRIC_INFO)
    assert set(info.higher) == {"more sensitive", "less sensitive"}
    assert info.loc["kl", "higher"] == "more sensitive" and info.loc["fisher", "per_bits"] == False  # noqa: E712


def test_recalibrated_ablation_is_layer_sensitivity(trained):
    model, data = trained
    frame = sensitivity_metrics(model, data, metrics="ablation", bits=(2,), recalibrate=True, n_samples=256,
                                layers=["conv2", "fc3"])
    ref = layer_sensitivity(model, data, bits=2, layers=["conv2", "fc3"], n_calibration=256)
    assert frame.value.tolist() == ref.accuracy_drop.tolist()


def test_bad_arguments_name_what_is_allowed():
    X, y = _data(20, 4, 2)
    net = nn.Sequential(nn.Linear(4, 2))
    with pytest.raises(ValueError, match="unknown metric 'hesian'.*Did you mean 'hawq'|unknown metric 'hesian'"):
        sensitivity_metrics(net, (X, y), metrics="hesian")
    with pytest.raises(ValueError, match="metrics is empty"):
        sensitivity_metrics(net, (X, y), metrics=[])
    with pytest.raises(ValueError, match=r"bits must be an integer in 1\.\.8, got 9"):
        sensitivity_metrics(net, (X, y), metrics="kl", bits=(9,))
    with pytest.raises(ValueError, match=r"bits must be an integer in 2\.\.8, got 1"):
        sensitivity_metrics(net, (X, y), metrics="kl", bits=(1,), weight_mode="lsq")
    with pytest.raises(ValueError, match="weight_mode must be one of"):
        sensitivity_metrics(net, (X, y), metrics="kl", weight_mode="lsqq")
    with pytest.raises(ValueError, match="n_probes must be an integer >= 1"):
        sensitivity_metrics(net, (X, y), metrics="hawq", n_probes=0)
    with pytest.raises(ValueError, match="n_probes must be at most the number of samples"):
        sensitivity_metrics(net, (X, y), metrics="hawq", n_probes=50, n_samples=None)
    with pytest.raises(ValueError, match=r"layers \['fc'\] are not quantizable layers"):
        sensitivity_metrics(net, (X, y), metrics="kl", layers=["fc"])
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        sensitivity_metrics("net", (X, y), metrics="kl")
    with pytest.raises(ValueError, match="the labels hold labels in 0..1, but the model has 1 outputs|labels"):
        sensitivity_metrics(nn.Sequential(nn.Linear(4, 1)), (X, y), metrics="kl")
