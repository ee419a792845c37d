"""Per-layer sensitivity to quantization, by every registered measure, in one tidy frame.

``sensitivity_metrics`` returns one row per (layer, metric, operand, bits).
The measures are registered in ``registry`` (the built-in ones in
``builtin_metrics``); their formulas and sources are in ``METRIC_INFO``,
``metric_info()`` and docs/method.md; ``W_b`` is the weight quantized at ``b``
bits at the float weight's scale (``quantized_at_scale``), ``Q_a(x)`` the
layer's input quantized at ``a`` bits, and "one layer quantized" means every
other weight and input stays float.

What they share, to stay fast (``_passes``): one float forward pass per batch
records every layer's input and output (and, for the output error, one
backward pass every ``dL/dY``); each layer is then quantized alone by swapping
a tensor's value, never by copying the model; the network-level measures
recompute only the part of the network after the changed layer. The Hessian
trace takes its own passes (``hessian``); the separability measures read the
features that ``separability_profile`` collects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import pandas as pd
from torch import nn

from ..quant import activation_quantizer
from .builtin_metrics import BUILTIN_METRICS  # importing it registers them
from ._passes import Plan, run_passes
from ._prepare import check_bit_list, check_positive_int, prepared
from .registry import (METRIC_INFO, SENSITIVITY_METRICS, Context, MetricInfo, check_metric_names, get_metric,
                       register_metric, unregister_metric)
from .sensitivity import quantized_at_scale
from .separability import separability_profile

COLUMNS = ["layer", "depth", "metric", "operand", "bits", "value"]
#: an older name of ``SENSITIVITY_METRICS`` (``pdbviz.analysis.METRICS`` names the separability measures).
METRICS = SENSITIVITY_METRICS


def metric_info() -> pd.DataFrame:
    """``METRIC_INFO`` as a table: one row per metric, what a larger value means and how it becomes a cost.

    Example:
        >>> metric_info().set_index("name").loc["sqnr", "higher"]
        'less sensitive'
    """
    return pd.DataFrame([asdict(m) for m in METRIC_INFO.values()])


def sensitivity_metrics(model: nn.Module, data, metrics: Sequence[str] | str = SENSITIVITY_METRICS,
                        bits: Sequence[int] = (1, 2, 4, 8), a_bits: Sequence[int] = (), n_samples: int | None = 512,
                        n_probes: int = 16, weight_mode: str = "dorefa", act_mode: str = "dorefa",
                        layers: Sequence[str] | None = None, batch_size: int = 128, max_dim: int = 512,
                        recalibrate: bool = False, seed: int = 0, split: str = "test", output=None,
                        device=None, loss=None) -> pd.DataFrame:
    """Sensitivity of each layer to quantization, by each of ``metrics``, in one tidy frame.

    Args:
        model: the float model (one that carries pdbviz quantizers is measured as its float version).
        data: any form ``as_data`` accepts; ``n_samples`` of ``split`` are used (stratified, seeded).
        metrics: names from ``SENSITIVITY_METRICS`` (see ``metric_info()`` for each one's formula and direction).
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
    specs = [get_metric(m) for m in metrics]
    later = [m for m in specs if recalibrate and m.recalibrated is not None]
    options = dict(bits=bits, a_bits=a_bits, n_samples=n_samples, n_probes=n_probes, weight_mode=weight_mode,
                   act_mode=act_mode, layers=layers, batch_size=batch_size, max_dim=max_dim, recalibrate=recalibrate,
                   seed=seed, split=split, output=output, device=device, loss=loss)
    rows: list[dict] = []
    with prepared(model, data, n_samples, seed, split, layers, device, output) as s:
        quantized = {name: [(b, quantized_at_scale(p, b, weight_mode)) for b in bits] for name, p in s.weights}
        quantizers = {t.name: [(a, activation_quantizer(act_mode)(a)) for a in a_bits]
                      for t in s.targets if s.input_ok[t.name]}
        ctx = Context(s, model, data, quantized, quantizers, options, s.depth)
        passes = [m for m in specs if m.scope in ("local", "network") and m not in later]
        if passes:
            plan = Plan(s.targets, {t.name: quantized[t.name] for t in s.targets}, quantizers,
                        local=[m for m in passes if m.scope == "local"],
                        network=[m for m in passes if m.scope == "network"], batch_size=batch_size, output=output,
                        max_dim=max_dim, seed=seed, loss=loss)
            res = run_passes(s.model, s.X, s.y, plan, s.device)
            for t in s.targets:
                for operand, b, _ in plan.changes(t.name):
                    key = (t.name, operand, b)
                    for m in passes:
                        rows.append(ctx.row(t.name, m.name, operand, b, res.value(m, key)))
        for m in specs:
            if m.scope == "own" and m not in later:
                rows += m.compute(ctx)
        model_eval, targets = s.model, [t.name for t in s.targets]
    ctx.setup = None
    for m in later:
        rows += m.recalibrated(ctx)
    sep = [m.name for m in specs if m.scope == "separability"]
    if sep:
        prof = separability_profile(model_eval, data, metrics=sep, n_samples=n_samples, seed=seed, layers=targets,
                                    split=split, output=output, device=device)
        for _, r in prof[prof.layer != "logits"].iterrows():
            rows += [ctx.row(r.layer, m, None, None, float(r[m])) for m in sep]
    return _frame(rows, metrics)


def _frame(rows: list[dict], metrics: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["bits"] = frame["bits"].astype("Int64")
    frame["value"] = frame["value"].astype(float)
    order = {m: i for i, m in enumerate(metrics)}
    frame["_m"] = frame.metric.map(order)
    frame["_o"] = frame.operand.map({"weight": 0, "input": 1}).fillna(-1)
    frame = frame.sort_values(["_m", "_o", "depth", "bits"], kind="stable").drop(columns=["_m", "_o"])
    return frame.reset_index(drop=True)


__all__ = ["BUILTIN_METRICS", "COLUMNS", "METRICS", "METRIC_INFO", "SENSITIVITY_METRICS", "MetricInfo",
           "check_metric_names", "get_metric", "metric_info", "register_metric", "sensitivity_metrics",
           "unregister_metric"]
