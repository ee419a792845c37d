"""Hessian traces of the loss per layer, by Hutchinson's estimator, for HAWQ-V2's sensitivity.

Hutchinson (1989): for a symmetric matrix ``H`` and a random vector ``v``
with independent Rademacher entries (+1 or -1 with probability 1/2),
``E[v^T H v] = Tr(H)``. ``H v`` comes without forming ``H``, by a second
backward pass through the gradient (``torch.autograd.grad`` with
``create_graph=True``): ``H v = d(g . v)/dW``. One probe pass gives ``v^T H_l v_l``
for every layer at once, because a block-diagonal slice of one random ``v``
is a random ``v_l`` for each block.

The loss ``L`` is the mean loss over the ``n`` calibration samples. Each of
the ``k`` probes reads its own slice ``S_i`` of the samples (``n / k`` of
them): ``t_i = v_i^T H(L_i) v_i`` with ``L_i`` the mean loss over ``S_i``, and
``Tr H(L) ~ sum_i (|S_i| / n) t_i`` is unbiased, because ``L = sum_i
(|S_i| / n) L_i``. So the estimate costs one forward, one backward and one
double-backward pass over the samples whatever ``k``; its standard error
(the spread of the ``t_i``) covers both the probes and the samples.

One probe covers every block at once: ``v_l^T (H v)_l`` is unbiased for
``Tr(H_l)``, and the cross terms ``v_l^T H_lm v_m`` of the other blocks add
variance (zero mean), not bias; the standard error includes it.

With inputs, each layer's input is the variable of a second Hessian block
(HAWQ-V2's activation Hessian): the layer's own copy of its input, so that a
tensor that several layers read is differentiated separately for each reader.
Its trace is per sample (each sample's input affects only its own loss).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..inference import loss_sum, select_output
from ._passes import Target


@dataclass
class Traces:
    """Per ``(layer, operand)``: each probe's estimate ``t_i`` and the number of variables (all samples' for
    inputs); the slices' weights ``|S_i| / n``; for inputs ``sum ||Q_a(x) - x||^2`` per ``(layer, a_bits)``."""

    weights: np.ndarray
    probes: dict = field(default_factory=dict)
    numel: dict = field(default_factory=dict)
    input_error: dict = field(default_factory=dict)

    def trace(self, key) -> float:
        return float(self.weights @ self.probes[key])

    def stderr(self, key) -> float:
        t = self.probes[key]
        return float(np.std(t, ddof=1) * math.sqrt(float(self.weights @ self.weights))) if len(t) > 1 else math.nan


def hutchinson(model: nn.Module, X: torch.Tensor, y: torch.Tensor, weights: Sequence[tuple[str, nn.Parameter]],
               inputs: Sequence[Target], input_quantizers: dict, n_probes: int, batch_size: int, seed: int,
               output, device, loss=None) -> Traces:
    """Hutchinson traces of the mean loss over ``(X, y)`` (see the module docstring) for each ``(name, parameter)``
    of ``weights`` and for the input of each target of ``inputs``. ``model`` must be in eval mode;
    ``input_quantizers`` maps a layer to ``[(a_bits, quantizer)]`` whose squared errors are summed on the way."""
    n = len(X)
    if n_probes > n:
        raise ValueError(f"n_probes must be at most the number of samples ({n}): each probe reads its own samples; "
                         f"got {n_probes}")
    bounds = np.linspace(0, n, n_probes + 1).round().astype(int)
    out = Traces(np.diff(bounds) / n)
    gen = torch.Generator().manual_seed(seed)
    saved = [(p, p.requires_grad) for _, p in weights]
    for p, _ in saved:
        p.requires_grad_(True)
    try:
        for k in range(n_probes):
            lo, hi = int(bounds[k]), int(bounds[k + 1])
            v_w = [_rademacher(p, gen) for _, p in weights]  # one probe for the slice, across its chunks
            for i in range(lo, hi, batch_size):
                _chunk(model, X[i:min(hi, i + batch_size)].to(device), y[i:min(hi, i + batch_size)].to(device),
                       hi - lo, k, weights, v_w, inputs, input_quantizers, gen, output, loss, out)
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)
    return out


def _chunk(model, xb, yb, slice_n, k, weights, v_w, inputs, input_quantizers, gen, output, loss, out: Traces):
    """Add one chunk's ``v^T H v`` (of its share of the slice's mean loss) to probe ``k``."""
    captured: dict[str, torch.Tensor] = {}
    handles = [t.module.register_forward_pre_hook(_alias(t, captured), with_kwargs=True) for t in inputs]
    try:
        with torch.enable_grad():
            z = select_output(model(xb), output)
            value = loss_sum(z, yb, loss) / slice_n
    finally:
        for h in handles:
            h.remove()
    keys = [(name, "weight") for name, _ in weights] + [(t.name, "input") for t in inputs if t.name in captured]
    tensors = [p for _, p in weights] + [captured[t.name] for t in inputs if t.name in captured]
    vs = list(v_w) + [_rademacher(captured[t.name], gen) for t in inputs if t.name in captured]
    with torch.enable_grad():
        grads = torch.autograd.grad(value, tensors, create_graph=True, allow_unused=True)
    live = [j for j, g in enumerate(grads) if g is not None and g.requires_grad]
    hv = torch.autograd.grad([grads[j] for j in live], [tensors[j] for j in live],
                             grad_outputs=[vs[j] for j in live], allow_unused=True) if live else []
    n_probes = len(out.weights)
    for j, key in enumerate(keys):
        out.probes.setdefault(key, np.zeros(n_probes))
        out.numel[key] = tensors[j].numel() if key[1] == "weight" else out.numel.get(key, 0) + tensors[j].numel()
    for j, h in zip(live, hv):
        if h is not None:
            out.probes[keys[j]][k] += float((h.detach() * vs[j]).sum(dtype=torch.float64))
    with torch.no_grad():
        for t in inputs:
            if t.name in captured:
                x = captured[t.name].detach()
                for b, q in input_quantizers.get(t.name, []):
                    key = (t.name, b)
                    out.input_error[key] = out.input_error.get(key, 0.0) + float((q(x) - x).pow(2).sum(
                        dtype=torch.float64))


def _rademacher(t: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    v = torch.randint(0, 2, t.shape, generator=gen, dtype=torch.int8)
    return (v.to(device=t.device, dtype=t.dtype) * 2 - 1)


def _alias(t: Target, captured: dict):
    """A pre-hook that hands the layer its own copy of its input (first call only) and keeps it."""
    def hook(_m, args, kwargs):
        if t.name in captured:
            return None
        args, kwargs = list(args), dict(kwargs)
        for pos, key in t.slots:
            x = args[pos] if pos < len(args) else kwargs.get(key)
            if isinstance(x, torch.Tensor) and x.is_floating_point() and x.requires_grad:
                x = x.clone()
                captured[t.name] = x
                if pos < len(args):
                    args[pos] = x
                else:
                    kwargs[key] = x
                break  # one variable per layer: its first quantizable argument
        return tuple(args), kwargs
    return hook


def hessian_trace(model: nn.Module, data, n_probes: int = 16, inputs: bool = False,
                  layers: Sequence[str] | None = None, n_samples: int | None = 512, batch_size: int = 128,
                  seed: int = 0, split: str = "test", output=None, device=None, loss=None) -> pd.DataFrame:
    """Hutchinson estimate of the Hessian trace of the loss with respect to each layer's weights (and inputs).

    ``Tr(H_l) ~ (1/k) sum_i v_i^T H_l v_i`` over ``k = n_probes`` Rademacher
    probes, ``H_l v`` by double backward, each probe on its own slice of the
    samples (see the module docstring); the loss is the mean cross-entropy
    (or ``loss(logits, labels)``, a batch mean) over ``n_samples`` samples of
    ``split``, with the model in eval mode. The trace of a layer divided by its number of values
    is HAWQ-V2's average curvature.

    Returns a DataFrame with columns ``layer``, ``depth``, ``operand``
    (``"weight"``, or ``"input"`` with ``inputs=True``), ``trace``,
    ``trace_se`` (standard error over the probes) and ``numel``.

    Example:
        >>> from pdbviz import build_model, load_dataset
        >>> d = load_dataset("digits"); m = build_model("mlp", d.input_shape, 10)
        >>> hessian_trace(m, d, n_probes=4, n_samples=64).layer.tolist()
        ['fc1', 'fc2', 'fc3']
    """
    from ._prepare import check_positive_int, prepared

    n_probes = check_positive_int(n_probes, "n_probes", minimum=1)
    batch_size = check_positive_int(batch_size, "batch_size", minimum=1)
    with prepared(model, data, n_samples, seed, split, layers, device, output) as s:
        inputs_of = [t for t in s.targets if s.input_ok[t.name]] if inputs else []
        traces = hutchinson(s.model, s.X, s.y, s.weights, inputs_of, {}, n_probes, batch_size,
                            seed, output, s.device, loss)
    rows = [{"layer": name, "depth": s.depth[name], "operand": operand, "trace": traces.trace((name, operand)),
             "trace_se": traces.stderr((name, operand)), "numel": traces.numel[(name, operand)]}
            for name, operand in traces.probes]
    frame = pd.DataFrame(rows, columns=["layer", "depth", "operand", "trace", "trace_se", "numel"])
    return frame.sort_values(["operand", "depth"], ascending=[False, True], kind="stable").reset_index(drop=True)
