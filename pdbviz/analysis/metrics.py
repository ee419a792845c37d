"""Per-layer sensitivity to quantization, by every measure pdbviz knows, in one tidy frame.

``sensitivity_metrics`` returns one row per (layer, metric, operand, bits).
The measures, their formulas and sources are in ``METRIC_INFO`` and in
docs/method.md; ``W_b`` is the weight quantized at ``b`` bits at the float
weight's scale (``quantized_at_scale``), ``Q_a(x)`` the layer's input
quantized at ``a`` bits, and "one layer quantized" means every other weight
and input stays float.

What they share, to stay fast (``_passes``): one float forward pass per batch
records every layer's input and output (and, for the output error, one
backward pass every ``dL/dY``); each layer is then quantized alone by swapping
a tensor's value, never by copying the model; the network-level measures
recompute only the part of the network after the changed layer. The Hessian
trace takes its own passes (``hessian``); the separability measures read the
features that ``separability_profile`` collects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from torch import nn

from .._checks import did_you_mean
from ..quant import activation_quantizer
from ._passes import Plan, run_passes
from ._prepare import check_bit_list, check_positive_int, prepared
from .cka import linear_cka
from .hessian import hutchinson
from .sensitivity import layer_sensitivity, quantized_at_scale
from .separability import METRICS as SEPARABILITY, separability_profile

COLUMNS = ["layer", "depth", "metric", "operand", "bits", "value"]


@dataclass(frozen=True)
class MetricInfo:
    """How to read one sensitivity measure.

    Attributes:
        name: the ``metric`` value in the frame.
        per_bits: whether the value depends on a bit-width (else ``bits`` and ``operand`` are empty).
        higher: ``"more sensitive"`` or ``"less sensitive"``: what a larger value means.
        formula: what is computed.
        cost: how ``predicted_loss`` turns a value into a predicted loss increase.
        reference: where the measure comes from.
    """

    name: str
    per_bits: bool
    higher: str
    formula: str
    cost: str
    reference: str


_SEP_COST = "difficulty d (1/J, 1 - accuracy or (1 - s)/2, scaled to max 1) times 4^-w + 4^-a"
#: how to read each sensitivity measure, by name (``metric_info()`` gives it as a table).
METRIC_INFO: dict[str, MetricInfo] = {m.name: m for m in [
    MetricInfo("fisher", False, "less sensitive", "tr(S_B) / tr(S_W) of the layer's input features", _SEP_COST,
               "Fisher's criterion; Chu et al., Pattern Recognition 2021"),
    MetricInfo("probe", False, "less sensitive", "held-out accuracy of a logistic-regression probe on the input",
               _SEP_COST, "Alain & Bengio 2016"),
    MetricInfo("knn", False, "less sensitive", "held-out 5-NN accuracy on the input", _SEP_COST, "cross-check"),
    MetricInfo("silhouette", False, "less sensitive", "mean silhouette of the classes in the input", _SEP_COST,
               "Rousseeuw 1987"),
    MetricInfo("hawq", True, "more sensitive",
               "Omega = Tr(H)/n * ||W_b - W||^2 (weights) or Tr(H_x)/n_x * ||Q_a(x) - x||^2 (inputs), Tr by "
               "Hutchinson", "Omega / 2 (second-order loss increase)",
               "HAWQ-V2, Dong et al., NeurIPS 2020 (arXiv 1911.03852); Hutchinson 1989"),
    MetricInfo("output_error", True, "more sensitive",
               "mean over samples of sum (dL/dY)^2 (Y - Y_b)^2 at the layer's output, one layer quantized",
               "score / 2 (empirical-Fisher loss increase)", "NVIDIA TensorRT Model Optimizer, auto_quantize"),
    MetricInfo("sqnr", True, "less sensitive",
               "10 log10(sum z^2 / sum (z - z_b)^2) of the logits z, one layer quantized (dB)",
               "10^(-sqnr/10), the relative noise power of the logits", "Qualcomm AIMET, AMP phase 1"),
    MetricInfo("kl", True, "more sensitive", "mean KL(softmax(z) || softmax(z_b)) of the logits, one layer quantized",
               "KL itself (nats)", "Qualcomm AIMET, AMP phase 1"),
    MetricInfo("cka", True, "less sensitive",
               "linear CKA of the layer's float and quantized outputs over the samples (pooled features)",
               "1 - CKA", "Kornblith et al., ICML 2019"),
    MetricInfo("ablation", True, "more sensitive",
               "accuracy drop with only that layer quantized (on the sample; recalibrate=True: layer_sensitivity)",
               "max(drop, 0)", "one-layer ablation, as AIMET's accuracy-based phase 1"),
    MetricInfo("loss_increase", True, "more sensitive",
               "mean cross-entropy increase with only that layer quantized", "max(increase, 0) (nats)",
               "one-layer ablation of the loss"),
]}
#: the names of the sensitivity measures, in the frame's order.
METRICS = tuple(METRIC_INFO)
_LOCAL = ("output_error", "cka")
_NETWORK = ("sqnr", "kl", "ablation", "loss_increase")


def metric_info() -> pd.DataFrame:
    """``METRIC_INFO`` as a table: one row per metric, what a larger value means and how it becomes a cost.

    Example:
        >>> metric_info().set_index("name").loc["sqnr", "higher"]
        'less sensitive'
    """
    return pd.DataFrame([asdict(m) for m in METRIC_INFO.values()])


def check_metric_names(metrics) -> tuple[str, ...]:
    """The metric names, checked against ``METRICS``."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    metrics = tuple(dict.fromkeys(metrics))
    if not metrics:
        raise ValueError(f"metrics is empty; choose from {METRICS}")
    for m in metrics:
        if m not in METRIC_INFO:
            raise ValueError(f"metrics: unknown metric {m!r}; available: {', '.join(METRICS)}."
                             f"{did_you_mean(m, METRICS)}")
    return metrics


def sensitivity_metrics(model: nn.Module, data, metrics: Sequence[str] | str = METRICS,
                        bits: Sequence[int] = (1, 2, 4, 8), a_bits: Sequence[int] = (), n_samples: int | None = 512,
                        n_probes: int = 16, weight_mode: str = "dorefa", act_mode: str = "dorefa",
                        layers: Sequence[str] | None = None, batch_size: int = 128, max_dim: int = 512,
                        recalibrate: bool = False, seed: int = 0, split: str = "test", output=None,
                        device=None, loss=None) -> pd.DataFrame:
    """Sensitivity of each layer to quantization, by each of ``metrics``, in one tidy frame.

    Args:
        model: the float model (one that carries pdbviz quantizers is measured as its float version).
        data: any form ``as_data`` accepts; ``n_samples`` of ``split`` are used (stratified, seeded).
        metrics: names from ``METRICS`` (see ``metric_info()`` for each one's formula and direction).
        bits: weight bit-widths of the per-bit measures.
        a_bits: input bit-widths (empty: no input rows). The network's own
            input and inputs pdbviz cannot reach get none.
        n_probes: Rademacher probes of the Hutchinson trace (``hawq``).
        weight_mode, act_mode: the quantizers (registered modes).
        layers: names of quantizable layers to measure (default: all).
        batch_size: samples per forward pass (bounds the memory).
        max_dim: values per sample of the pooled features that ``cka`` compares.
        recalibrate: ``ablation`` by ``layer_sensitivity`` (a quantized copy
            per layer and bit-width, BatchNorm re-estimated, accuracy on the
            whole split): slower, and what a deployed model would see.
        output: where the logits are in the model's output (see ``select_output``).
        device: where to run (default: where the model is).
        loss: ``loss(logits, labels)`` returning the batch mean (default
            cross-entropy), for ``hawq``, ``output_error`` and ``loss_increase``.

    Returns:
        Columns ``layer``, ``depth`` (forward order), ``metric``, ``operand``
        (``"weight"`` or ``"input"``; empty for bit-independent measures),
        ``bits`` (empty likewise) and ``value``. The per-bit measures cover
        layers whose weight is a parameter of their module and whose input a
        hook sees (``hawq`` on weights: every parameter weight the forward uses).

    Example:
        >>> from pdbviz import build_model, load_dataset
        >>> d = load_dataset("digits"); m = build_model("mlp", d.input_shape, 10)
        >>> f = sensitivity_metrics(m, d, metrics=["kl", "fisher"], bits=(2, 8), n_samples=100)
        >>> f.groupby("metric").size().to_dict()
        {'fisher': 3, 'kl': 6}
    """
    metrics = check_metric_names(metrics)
    bits = check_bit_list(bits, "bits", weight_mode)
    a_bits = check_bit_list(a_bits, "a_bits", allow_empty=True)
    activation_quantizer(act_mode)
    n_probes = check_positive_int(n_probes, "n_probes")
    batch_size = check_positive_int(batch_size, "batch_size")
    max_dim = check_positive_int(max_dim, "max_dim")
    rows: list[dict] = []
    with prepared(model, data, n_samples, seed, split, layers, device, output) as s:
        quantized = {name: [(b, quantized_at_scale(p, b, weight_mode)) for b in bits] for name, p in s.weights}
        quantizers = {t.name: [(a, activation_quantizer(act_mode)(a)) for a in a_bits]
                      for t in s.targets if s.input_ok[t.name]}
        passes = [m for m in metrics if m in _LOCAL or (m in _NETWORK and not (m == "ablation" and recalibrate))]
        if passes:
            plan = Plan(s.targets, {t.name: quantized[t.name] for t in s.targets}, quantizers,
                        output_error="output_error" in passes, cka="cka" in passes,
                        network=any(m in _NETWORK for m in passes), batch_size=batch_size, output=output,
                        max_dim=max_dim, seed=seed, loss=loss)
            res = run_passes(s.model, s.X, s.y, plan, s.device)
            for t in s.targets:
                for operand, b, _ in plan.changes(t.name):
                    key = (t.name, operand, b)
                    for m in passes:
                        rows.append(_row(t.name, s.depth, m, operand, b, _finish(m, res, key)))
        if "hawq" in metrics:
            traces = hutchinson(s.model, s.X, s.y, s.weights, [t for t in s.targets if t.name in quantizers],
                                quantizers, n_probes, batch_size, seed, output, s.device, loss)
            for name, p in s.weights:
                curvature = traces.trace((name, "weight")) / traces.numel[(name, "weight")]
                for b, wb in quantized[name]:
                    rows.append(_row(name, s.depth, "hawq", "weight", b,
                                     curvature * float((wb - p.detach()).double().pow(2).sum())))
            for name in quantizers:
                if (name, "input") in traces.probes:
                    curvature = traces.trace((name, "input")) / traces.numel[(name, "input")]
                    for a, _ in quantizers[name]:
                        rows.append(_row(name, s.depth, "hawq", "input", a, curvature * traces.input_error[(name, a)]))
        depth, model_eval = s.depth, s.model
    if "ablation" in metrics and recalibrate:
        rows += _recalibrated_ablation(model, data, bits, a_bits, quantizers, weight_mode, act_mode, layers,
                                       n_samples, split, output, device, depth)
    sep = [m for m in metrics if m in SEPARABILITY]
    if sep:
        targets = [t.name for t in s.targets]
        prof = separability_profile(model_eval, data, metrics=sep, n_samples=n_samples, seed=seed, layers=targets,
                                    split=split, output=output, device=device)
        for _, r in prof[prof.layer != "logits"].iterrows():
            rows += [_row(r.layer, depth, m, None, None, float(r[m])) for m in sep]
    return _frame(rows, metrics)


def _row(layer, depth, metric, operand, bits, value) -> dict:
    return {"layer": layer, "depth": depth[layer], "metric": metric, "operand": operand, "bits": bits,
            "value": value}


def _finish(metric: str, res, key) -> float:
    n = res.n
    if metric == "output_error":
        return res.output_error[key] / n
    if metric == "cka":
        return linear_cka(np.concatenate([c.numpy() for c in res.float_features[key[0]]]),
                          np.concatenate([c.numpy() for c in res.features[key]]))
    if metric == "sqnr":
        noise = res.noise[key]
        return math.inf if noise == 0 else 10 * math.log10(res.signal / noise)
    if metric == "kl":
        return res.kl[key] / n
    if metric == "ablation":
        return (res.float_correct - res.correct[key]) / n
    return (res.loss[key] - res.float_loss) / n  # loss_increase


def _recalibrated_ablation(model, data, bits, a_bits, quantizers, weight_mode, act_mode, layers, n_samples, split,
                           output, device, depth) -> list[dict]:
    rows = []
    kw = dict(layers=layers, n_calibration=n_samples or 512, weight_mode=weight_mode, split=split, output=output,
              device=device)
    for b in bits:
        frame = layer_sensitivity(model, data, bits=b, **kw)
        rows += [_row(r.layer, depth, "ablation", "weight", b, r.accuracy_drop) for r in frame.itertuples()]
    for a in a_bits:
        frame = layer_sensitivity(model, data, bits=32, a_bits=a, act_mode=act_mode,
                                  **{**kw, "layers": list(quantizers)})
        rows += [_row(r.layer, depth, "ablation", "input", a, r.accuracy_drop) for r in frame.itertuples()]
    return rows


def _frame(rows: list[dict], metrics: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["bits"] = frame["bits"].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    order = {m: i for i, m in enumerate(metrics)}
    frame["_m"] = frame.metric.map(order)
    frame["_o"] = frame.operand.map({"weight": 0, "input": 1}).fillna(-1)
    frame = frame.sort_values(["_m", "_o", "depth", "bits"], kind="stable").drop(columns=["_m", "_o"])
    return frame.reset_index(drop=True)
