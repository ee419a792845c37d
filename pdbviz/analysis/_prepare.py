"""What every sensitivity measure needs first: checked arguments, the sample, a float model in eval mode, its
layers in forward order and which of them each pass can reach."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import Integer, validate
from ..inference import check_batch_labels, probe, resolve_device
from ..quant import dequantize, discover, schedule_of, weight_quantizer
from ..quant.quantizers import check_bits
from ._passes import Target
from .features import observable_layers


@dataclass
class Setup:
    """The float model (eval mode, on ``device``), the sample, the reachable layers and each layer's depth."""

    model: nn.Module
    X: torch.Tensor
    y: torch.Tensor
    device: torch.device
    targets: list[Target]                    # weight a plain parameter, input seen by a hook
    weights: list[tuple[str, nn.Parameter]]  # weights a Hessian can be taken of
    depth: dict[str, int]
    input_ok: dict[str, bool]                # can the layer's input be quantized


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, else ValueError naming ``name``."""
    return validate(name, value, Integer(minimum, words=f"an integer >= {minimum}"))


def check_bit_list(bits, name: str, weight_mode: str | None = None, allow_empty: bool = False) -> tuple[int, ...]:
    """Distinct bit-widths in 1..8 (at least the weight mode's minimum), sorted."""
    if isinstance(bits, (int, str)) or not isinstance(bits, Iterable):
        bits = (bits,)
    minimum = weight_quantizer(weight_mode).min_bits if weight_mode is not None else 1
    out = tuple(sorted({check_bits(b, name, minimum=minimum, allow_float=False) for b in bits}))
    if not out and not allow_empty:
        raise ValueError(f"{name} is empty; give bit-widths in {minimum}..8")
    return out


def _plain_parameter(module: nn.Module, pname: str) -> nn.Parameter | None:
    p = module._parameters.get(pname)
    return p if isinstance(p, nn.Parameter) else None


@contextmanager
def prepared(model: nn.Module, data, n_samples, seed: int, split: str, layers: Sequence[str] | None, device,
             output):
    """Yield a ``Setup``; the model's train/eval mode is restored afterwards.

    A model that carries pdbviz quantizers is measured as its float version
    (``dequantize``, a copy). ``layers`` limits the layers (names of
    ``quantizable_layers``).
    """
    from .separability import sample_split

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    X, y = sample_split(data, n_samples, seed, split)
    dev = resolve_device(device, model)
    if schedule_of(model) is not None:
        model = dequantize(model)
    model.to(dev)
    n_out = probe(model, X, output, "the samples")
    check_batch_labels(y, n_out, "the labels")
    layout = discover(model, X[:2].to(dev))
    order = layout.names
    if layers is not None:
        if isinstance(layers, str):
            layers = [layers]
        unknown = [n for n in layers if n not in order]
        if unknown:
            raise ValueError(f"layers {unknown} are not quantizable layers of {type(model).__name__}; "
                             f"choose from {order}")
        keep = set(layers)
    else:
        keep = set(order)
    seen = set(observable_layers(layout))
    targets, weights = [], []
    for i, entry in enumerate(layout.entries):
        if entry.name not in keep:
            continue
        path, pname = entry.owners[0]
        module = model.get_submodule(path)
        param = _plain_parameter(module, pname)
        if param is None:
            continue
        if entry.use != "unused":
            weights.append((entry.name, param))
        if entry.name in seen:
            targets.append(Target(entry.name, path, pname, module, entry.inputs, i))
    input_ok = {e.name: i > 0 and e.input_quantizable for i, e in enumerate(layout.entries)}
    was_training = model.training
    model.eval()
    try:
        yield Setup(model, X, y, dev, targets, weights, {n: i for i, n in enumerate(order)}, input_ok)
    finally:
        model.train(was_training)
