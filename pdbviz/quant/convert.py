"""Swap a model's Conv2d and Linear layers for quantized ones, by name."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import torch
from torch import nn

from .discovery import QUANTIZABLE, quantizable_layers, registered_layers
from .layers import QUANT_LAYER_TYPES, is_quant_layer
from .quantizers import FULL_PRECISION
from .schedule import BitSchedule, BitSpec

log = logging.getLogger(__name__)

def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def check_schedule(model: nn.Module, schedule: BitSchedule) -> None:
    """Raise ValueError if ``schedule`` names layers that ``model`` lacks or cannot quantize."""
    modules = dict(model.named_modules())
    for name in schedule:
        if name not in modules:
            raise ValueError(
                f"schedule names layer {name!r}, which {type(model).__name__} does not have "
                f"(was the schedule built for another model?); its quantizable layers are {quantizable_layers(model)}"
            )
        if not isinstance(modules[name], QUANTIZABLE):
            raise ValueError(
                f"schedule names layer {name!r}, a {type(modules[name]).__name__}; only Conv2d and "
                f"Linear layers can be quantized: {quantizable_layers(model)}"
            )


def quantize(model: nn.Module, schedule: BitSchedule | str, example_input: torch.Tensor | None = None) -> nn.Module:
    """A new model with every layer named in ``schedule`` swapped for its quantized version.

    ``model`` is left untouched (it is deep-copied), so a notebook can compare
    both. ``schedule`` may be a ``BitSchedule`` or its one-line string, parsed
    against ``quantizable_layers(model)``. Layers already quantized get the new
    spec; layers the schedule does not name are kept as they are.

    The network's own input is never quantized: the first layer in forward
    order keeps full-precision inputs whatever ``a_bits`` the schedule gives it.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> q = quantize(net, "8-1")
        >>> [m.spec.w_bits for m in q if hasattr(m, "spec")]
        [8, 1]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    order = None
    if not registered_layers(model):
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to quantize")
    if isinstance(schedule, str):
        order = quantizable_layers(model, example_input)
        schedule = BitSchedule.from_string(schedule, order)
    if not isinstance(schedule, BitSchedule):
        raise TypeError(f"schedule must be a BitSchedule or its one-line string, got {type(schedule).__name__}")
    check_schedule(model, schedule)
    if order is None:
        order = quantizable_layers(model, example_input)
    first = order[0] if order else None
    new = copy.deepcopy(model)
    for name, spec in schedule.items():
        if name == first and spec.a_bits != FULL_PRECISION:
            log.debug("keeping the network input of %s at full precision", name)
            spec = BitSpec(spec.w_bits, FULL_PRECISION, spec.weight_mode)
        module = new.get_submodule(name)
        if is_quant_layer(module):
            module.set_spec(spec)
            continue
        quant_cls = QUANT_LAYER_TYPES[type(module)] if type(module) in QUANT_LAYER_TYPES else None
        if quant_cls is None:  # a subclass of Conv2d/Linear: match on isinstance
            quant_cls = next(q for f, q in QUANT_LAYER_TYPES.items() if isinstance(module, f))
        _set_submodule(new, name, quant_cls.from_float(module, spec))
    return new


def dequantize(model: nn.Module, bake: bool = False) -> nn.Module:
    """A new model with every quantized layer turned back into its float layer."""
    new = copy.deepcopy(model)
    for name, module in list(new.named_modules()):
        if name and is_quant_layer(module):
            _set_submodule(new, name, module.to_float(bake=bake))
    return new


def schedule_of(model: nn.Module) -> BitSchedule | None:
    """The schedule a quantized model carries (None if it has no quantized layer)."""
    items = [(n, m.spec) for n, m in model.named_modules() if n and is_quant_layer(m)]
    if not items:
        return None
    order = quantizable_layers(model)
    rank = {n: i for i, n in enumerate(order)}
    items.sort(key=lambda item: rank.get(item[0], len(rank)))
    return BitSchedule(items)


def layer_specs(model: nn.Module, names: Sequence[str] | None = None) -> dict[str, BitSpec]:
    """Spec of each quantizable layer (float layers get ``BitSpec()``), in forward order."""
    names = quantizable_layers(model) if names is None else list(names)
    modules = dict(model.named_modules())
    return {n: getattr(modules[n], "spec", BitSpec()) for n in names}
