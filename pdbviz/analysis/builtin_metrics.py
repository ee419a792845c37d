"""The sensitivity metrics pdbviz ships, each one registration (``registry.register_metric``): its meaning, its
cost and its computation in one call. Formulas and sources are also in docs/method.md.

``W_b`` is the weight quantized at ``b`` bits at the float weight's scale (``quantized_at_scale``), ``Q_a(x)`` the
layer's input quantized at ``a`` bits; "one layer quantized" means every other weight and input stays float.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .cka import linear_cka
from .hessian import hutchinson
from .registry import SENSITIVITY_METRICS, Context, LocalBatch, NetworkBatch, register_metric
from .sensitivity import layer_sensitivity

_SEP_COST = "difficulty d (1/J, 1 - accuracy or (1 - s)/2, scaled to max 1) times 4^-w + 4^-a"


def _positive(v):
    return np.maximum(v, 0.0)


def _mean(summaries, n):
    return sum(summaries) / n


# -- separability of the layer's input (computed by separability_profile) -----------------------------------------
register_metric("fisher", scope="separability", higher="less sensitive",
                formula="tr(S_B) / tr(S_W) of the layer's input features", cost=_SEP_COST,
                reference="Fisher's criterion; Chu et al., Pattern Recognition 2021")
register_metric("probe", scope="separability", higher="less sensitive",
                formula="held-out accuracy of a logistic-regression probe on the input", cost=_SEP_COST,
                reference="Alain & Bengio 2016")
register_metric("knn", scope="separability", higher="less sensitive", formula="held-out 5-NN accuracy on the input",
                cost=_SEP_COST, reference="cross-check")
register_metric("silhouette", scope="separability", higher="less sensitive",
                formula="mean silhouette of the classes in the input", cost=_SEP_COST, reference="Rousseeuw 1987")


# -- HAWQ: Hessian trace times the quantization error ----------------------------------------------------------------
def _hawq(ctx: Context) -> list[dict]:
    s, o = ctx.setup, ctx.options
    targets = [t for t in s.targets if t.name in ctx.quantizers]
    traces = hutchinson(s.model, s.X, s.y, s.weights, targets, ctx.quantizers, o["n_probes"], o["batch_size"],
                        o["seed"], o["output"], s.device, o["loss"])
    rows = []
    for name, p in s.weights:
        curvature = traces.trace((name, "weight")) / traces.numel[(name, "weight")]
        for b, wb in ctx.quantized[name]:
            rows.append(ctx.row(name, "hawq", "weight", b, curvature * float((wb - p.detach()).double().pow(2).sum())))
    for name in ctx.quantizers:
        if (name, "input") in traces.probes:
            curvature = traces.trace((name, "input")) / traces.numel[(name, "input")]
            for a, _ in ctx.quantizers[name]:
                rows.append(ctx.row(name, "hawq", "input", a, curvature * traces.input_error[(name, a)]))
    return rows


register_metric("hawq", scope="own", higher="more sensitive",
                formula="Omega = Tr(H)/n * ||W_b - W||^2 (weights) or Tr(H_x)/n_x * ||Q_a(x) - x||^2 (inputs), Tr by "
                        "Hutchinson",
                cost="Omega / 2 (second-order loss increase)",
                reference="HAWQ-V2, Dong et al., NeurIPS 2020 (arXiv 1911.03852); Hutchinson 1989",
                to_cost=lambda v: v / 2, compute=_hawq)


# -- local: one layer recomputed -------------------------------------------------------------------------------------
def _output_error(b: LocalBatch) -> float:
    return float((b.grad2 * b.D.pow(2)).sum(dtype=torch.float64))


register_metric("output_error", scope="local", higher="more sensitive",
                formula="mean over samples of sum (dL/dY)^2 (Y - Y_b)^2 at the layer's output, one layer quantized",
                cost="score / 2 (empirical-Fisher loss increase)",
                reference="NVIDIA TensorRT Model Optimizer, auto_quantize",
                to_cost=lambda v: v / 2, batch=_output_error, value=_mean, needs_grad=True)


# -- network: the rest of the network recomputed ---------------------------------------------------------------------
def _sqnr(summaries, n) -> float:
    signal, noise = sum(s for s, _ in summaries), sum(e for _, e in summaries)
    return math.inf if noise == 0 else 10 * math.log10(signal / noise)


register_metric("sqnr", scope="network", higher="less sensitive",
                formula="10 log10(sum z^2 / sum (z - z_b)^2) of the logits z, one layer quantized (dB)",
                cost="10^(-sqnr/10), the relative noise power of the logits", reference="Qualcomm AIMET, AMP phase 1",
                to_cost=lambda v: np.power(10.0, -np.asarray(v, dtype=float) / 10),
                batch=lambda b: (float(b.z64.pow(2).sum()), float((b.z64 - b.zq).pow(2).sum())), value=_sqnr)


def _kl(b: NetworkBatch) -> float:
    return float((b.logp.exp() * (b.logp - torch.log_softmax(b.zq, 1))).sum())


register_metric("kl", scope="network", higher="more sensitive",
                formula="mean KL(softmax(z) || softmax(z_b)) of the logits, one layer quantized",
                cost="KL itself (nats)", reference="Qualcomm AIMET, AMP phase 1",
                to_cost=lambda v: v, batch=_kl, value=_mean)


def _cka_value(summaries, n) -> float:
    return linear_cka(np.concatenate([f.numpy() for f, _ in summaries]),
                      np.concatenate([q.numpy() for _, q in summaries]))


register_metric("cka", scope="local", higher="less sensitive",
                formula="linear CKA of the layer's float and quantized outputs over the samples (pooled features)",
                cost="1 - CKA", reference="Kornblith et al., ICML 2019",
                to_cost=lambda v: np.maximum(1.0 - np.asarray(v, dtype=float), 0.0),
                batch=lambda b: (b.features(b.Y), b.features(b.Y - b.D)), value=_cka_value)


def _recalibrated_ablation(ctx: Context) -> list[dict]:
    o = ctx.options
    rows = []
    kw = dict(layers=o["layers"], n_calibration=o["n_samples"] or 512, weight_mode=o["weight_mode"],
              split=o["split"], output=o["output"], device=o["device"])
    for b in o["bits"]:
        frame = layer_sensitivity(ctx.model, ctx.data, bits=b, **kw)
        rows += [ctx.row(r.layer, "ablation", "weight", b, r.accuracy_drop) for r in frame.itertuples()]
    for a in o["a_bits"]:
        frame = layer_sensitivity(ctx.model, ctx.data, bits=32, a_bits=a, act_mode=o["act_mode"],
                                  **{**kw, "layers": list(ctx.quantizers)})
        rows += [ctx.row(r.layer, "ablation", "input", a, r.accuracy_drop) for r in frame.itertuples()]
    return rows


register_metric("ablation", scope="network", higher="more sensitive",
                formula="accuracy drop with only that layer quantized (on the sample; recalibrate=True: "
                        "layer_sensitivity)",
                cost="max(drop, 0)", reference="one-layer ablation, as AIMET's accuracy-based phase 1",
                to_cost=_positive,
                batch=lambda b: (int((b.z.argmax(1) == b.y).sum()), int((b.zq.argmax(1) == b.y).sum())),
                value=lambda s, n: (sum(f for f, _ in s) - sum(q for _, q in s)) / n,
                recalibrated=_recalibrated_ablation)
register_metric("loss_increase", scope="network", higher="more sensitive",
                formula="mean cross-entropy increase with only that layer quantized", cost="max(increase, 0) (nats)",
                reference="one-layer ablation of the loss", to_cost=_positive,
                batch=lambda b: (float(b.loss(b.z64, b.y)), float(b.loss(b.zq, b.y))),
                value=lambda s, n: (sum(q for _, q in s) - sum(f for f, _ in s)) / n)

#: the metrics registered above, in order.
BUILTIN_METRICS = tuple(SENSITIVITY_METRICS)
