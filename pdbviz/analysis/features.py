"""Collect what each quantizable layer receives, with hooks that are always removed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .._checks import check_inputs
from ..quant import discover
from ..quant.discovery import ModelLayout


def observable_layers(layout: ModelLayout) -> list[str]:
    """The quantizable weights whose input a hook on their module sees (all but functionally used ones,
    embeddings and recurrent weights), in forward order."""
    return [e.name for e in layout.entries if e.inputs is not None and e.use == "module"]

POOLS = ("auto", "avg", "flatten", "project")
LOGITS = "logits"


def _reduce(t: torch.Tensor, pool: str, max_dim: int, proj: dict, name: str, seed: int) -> torch.Tensor:
    if t.dim() == 4 and pool == "avg":
        return t.mean(dim=(2, 3))
    flat = t.flatten(1)
    d = flat.shape[1]
    if pool == "flatten" or (pool in ("auto", "avg") and d <= max_dim):
        return flat
    # seeded Gaussian random projection (Johnson-Lindenstrauss), one matrix per layer
    if name not in proj:
        g = torch.Generator().manual_seed(seed + sum(map(ord, name)))
        proj[name] = (torch.randn(d, max_dim, generator=g) / max_dim**0.5).to(flat.device, flat.dtype)
    return flat @ proj[name]


@torch.no_grad()
def collect_features(model: nn.Module, X: torch.Tensor, layers: Sequence[str] | None = None, pool: str = "auto",
                     max_dim: int = 1024, batch_size: int = 512, seed: int = 0,
                     include_logits: bool = True) -> dict[str, np.ndarray]:
    """The input of each quantizable layer (and the logits) for the samples ``X``.

    Args:
        model: any model; evaluated in eval mode under ``torch.no_grad()`` on its
            own device, in batches; its mode is restored afterwards.
        X: inputs ``(n, ...)``.
        layers: names of Conv2d/Linear layers (default: all, in forward order).
        pool: how a layer input becomes one vector per sample:
            ``"auto"`` flattens inputs of at most ``max_dim`` values and otherwise
            applies a seeded Gaussian random projection to ``max_dim`` dimensions;
            ``"avg"`` global-average-pools feature maps (then as ``"auto"``);
            ``"flatten"`` always flattens; ``"project"`` always projects when the
            input has more than ``max_dim`` values.
        include_logits: add the model's output under the key ``"logits"``.

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
    check_inputs(model, X, "X")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
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
    proj: dict[str, torch.Tensor] = {}
    current: dict[str, torch.Tensor] = {}

    def make_hook(name):
        pos, key = layout[name].inputs[0]

        def hook(_module, args, kwargs):
            if name not in current:  # first call in this forward pass
                x = args[pos] if pos < len(args) else kwargs[key]
                current[name] = x.detach()
        return hook

    handles = [modules[n].register_forward_pre_hook(make_hook(n), with_kwargs=True) for n in layers]
    was_training = model.training
    logits = []
    try:
        model.eval()
        for i in range(0, len(X), batch_size):
            current.clear()
            out = model(X[i:i + batch_size].to(device))
            logits.append(out.detach().float().cpu())
            for n in layers:
                chunks[n].append(_reduce(current[n].float(), pool, max_dim, proj, n, seed).cpu())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    result = {n: torch.cat(chunks[n]).numpy() for n in layers}
    if include_logits:
        result[LOGITS] = torch.cat(logits).numpy()
    return result
