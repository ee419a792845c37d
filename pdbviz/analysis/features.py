"""Collect what each quantizable layer receives, with hooks that are always removed.

Memory is bounded by design: samples go through the model in batches, and
each layer's input is reduced to at most ``max_dim`` values per sample as it
arrives, so the features of ``n`` samples take ``n x max_dim`` floats per
layer whatever the model. How an input becomes a vector (``pool``):

``"auto"`` (default)
    inputs of at most ``max_dim`` values are flattened; larger feature maps
    ``(C, H, W)`` are average-pooled to a ``g x g`` grid with ``C g^2 <=
    max_dim`` (``C`` alone when it exceeds ``max_dim``, then sketched);
    token sequences ``(L, D)`` (transformer inputs) are averaged over the
    tokens. Time O(input), no extra memory.
``"avg"``
    global average: ``C`` values for a feature map, ``D`` for tokens.
``"flatten"``
    every value (a resnet18 first-stage input is 200,704 values per sample:
    use with few samples).
``"project"``
    a seeded CountSketch of the flattened input to ``max_dim`` values
    (Charikar, Chen & Farach-Colton 2002; feature hashing, Weinberger et al.
    2009): it preserves inner products in expectation; O(input) time and one
    index per input value of memory, never a dense projection matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..data import as_data
from ..inference import forward_check, resolve_device, select_output
from ..quant import discover
from ..quant.discovery import ModelLayout

POOLS = ("auto", "avg", "flatten", "project")
LOGITS = "logits"


def observable_layers(layout: ModelLayout) -> list[str]:
    """The quantizable weights whose input a hook on their module sees (all but functionally used ones,
    embeddings and recurrent weights), in forward order."""
    return [e.name for e in layout.entries if e.inputs is not None and e.use == "module"]


class _Sketch:
    """A seeded CountSketch from ``d`` to ``k`` values, one per layer."""

    def __init__(self, d: int, k: int, seed: int, device):
        g = torch.Generator().manual_seed(seed)
        self.bucket = torch.randint(0, k, (d,), generator=g).to(device)
        self.sign = (torch.randint(0, 2, (d,), generator=g) * 2 - 1).to(device)
        self.k = k

    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        out = flat.new_zeros(flat.shape[0], self.k)
        return out.index_add_(1, self.bucket, flat * self.sign.to(flat.dtype))


def _reduce(t: torch.Tensor, pool: str, max_dim: int, channels_last: bool, sketches: dict, name: str,
            seed: int) -> torch.Tensor:
    if t.dim() >= 3 and pool in ("auto", "avg"):
        if channels_last:  # tokens (N, L, D): average over the tokens
            t = t.flatten(1, -2).mean(1)
        elif pool == "avg" or t[0].numel() > max_dim:
            c, spatial = t.shape[1], t.dim() - 2
            side = int((max_dim / c) ** (1 / spatial)) if pool == "auto" else 0
            t = t.flatten(2).mean(2) if side < 1 else \
                F.adaptive_avg_pool1d(t.flatten(2), side ** spatial) if spatial != 2 else F.adaptive_avg_pool2d(t, side)
    flat = t.flatten(1)
    d = flat.shape[1]
    if pool == "flatten" or d <= max_dim:
        return flat
    key = (name, d)
    if key not in sketches:
        sketches[key] = _Sketch(d, max_dim, seed + sum(map(ord, name)), flat.device)
    return sketches[key](flat)


def _batch_first(x: torch.Tensor, n: int) -> torch.Tensor:
    """Put the batch dimension first (sequence-first attention inputs arrive as (L, N, E))."""
    if x.dim() >= 2 and x.shape[0] != n and x.shape[1] == n:
        return x.transpose(0, 1)
    return x


@torch.no_grad()
def collect_features(model: nn.Module, data, layers: Sequence[str] | None = None, pool: str = "auto",
                     max_dim: int = 1024, batch_size: int = 64, seed: int = 0, include_logits: bool = True,
                     n_samples: int | None = None, split: str = "test", output=None,
                     device=None) -> dict[str, np.ndarray]:
    """The input of each quantizable layer (and the logits) for some samples, reduced to vectors.

    Args:
        model: any model; evaluated in eval mode under ``torch.no_grad()`` on its
            own device, in batches; its mode is restored afterwards.
        data: a tensor of inputs ``(n, ...)``, or data in any form ``as_data``
            accepts (then ``n_samples`` of its ``split`` are used: the test
            split if there is one, else the training split).
        layers: names of quantizable weights whose input a hook can see
            (default: all of them, in forward order).
        pool: how a layer input becomes one vector per sample; see the module
            docstring for what each choice costs.
        max_dim: at most this many values per sample and layer.
        batch_size: samples per forward pass (bounds the activation memory).
        include_logits: add the model's output under the key ``"logits"``.
        output: where the logits are in the model's output (see ``select_output``).
        device: where to run (the model is moved there); default where the model is.

    Returns:
        ``{layer: array (n, d)}`` in forward order, ``"logits"`` last.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
        >>> f = collect_features(net, torch.randn(5, 1, 4, 4))
        >>> {k: v.shape for k, v in f.items()}
        {'1': (5, 16), '3': (5, 8), 'logits': (5, 3)}
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
    if isinstance(max_dim, bool) or not isinstance(max_dim, int) or max_dim < 1:
        raise ValueError(f"max_dim must be a positive integer, got {max_dim!r}")
    X = data if isinstance(data, torch.Tensor) else as_data(data).measure_split(split).sample(n_samples, seed)[0]
    if len(X) == 0:
        raise ValueError("X is empty")
    device = resolve_device(device, model)
    model.to(device)
    forward_check(model, X, "X")
    layout = discover(model, X[:2].to(device))
    order = observable_layers(layout)
    if layers is None:
        layers = order
    else:
        layers = list(layers)
        unknown = [n for n in layers if n not in order]
        if unknown:
            raise ValueError(f"layers {unknown} are not layers whose input pdbviz can observe; choose from {order}"
                             + "".join(f"; {n}: {layout[n].input_note}" for n in unknown if n in layout))
        layers = [n for n in order if n in layers]
    modules = {n: model.get_submodule(layout[n].owners[0][0]) for n in layers}
    chunks: dict[str, list[torch.Tensor]] = {n: [] for n in layers}
    sketches: dict = {}
    current: dict[str, torch.Tensor] = {}
    batch_n = [0]

    def make_hook(name):
        pos, key = layout[name].inputs[0]
        channels_last = not isinstance(modules[name], nn.modules.conv._ConvNd)

        def hook(_module, args, kwargs):
            if name not in current:  # first call in this forward pass
                x = args[pos] if pos < len(args) else kwargs[key]
                x = _batch_first(x.detach(), batch_n[0]).float()
                current[name] = _reduce(x, pool, max_dim, channels_last, sketches, name, seed).cpu()
        return hook

    handles = [modules[n].register_forward_pre_hook(make_hook(n), with_kwargs=True) for n in layers]
    was_training = model.training
    logits = []
    try:
        model.eval()
        for i in range(0, len(X), batch_size):
            current.clear()
            xb = X[i:i + batch_size].to(device)
            batch_n[0] = len(xb)
            out = model(xb)
            if include_logits:
                logits.append(select_output(out, output).detach().float().cpu())
            for n in layers:
                chunks[n].append(current[n])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    result = {n: torch.cat(chunks[n]).numpy() for n in layers}
    if include_logits:
        result[LOGITS] = torch.cat(logits).numpy()
    return result
