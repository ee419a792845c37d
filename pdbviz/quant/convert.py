"""Quantize a model by the names of its weights, undo it, read a model's schedule, re-estimate BatchNorm."""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from .discovery import ModelLayout, discover
from .layers import WeightQuant, attach, detach, sync_input_hook, weight_quant
from .quantizers import FULL_PRECISION
from .schedule import BitSchedule, BitSpec

log = logging.getLogger(__name__)


def check_schedule(model: nn.Module, schedule: BitSchedule, layout: ModelLayout | None = None) -> None:
    """Raise ValueError if ``schedule`` names weights that ``model`` lacks or cannot quantize."""
    layout = layout if layout is not None else discover(model)
    modules = dict(model.named_modules())
    for name in schedule:
        if name in layout:
            continue
        if name in modules:
            raise ValueError(
                f"schedule names layer {name!r}, a {type(modules[name]).__name__} with no quantizable weight; "
                f"its quantizable weights are {layout.names}"
            )
        raise ValueError(
            f"schedule names layer {name!r}, which {type(model).__name__} does not have "
            f"(was the schedule built for another model?); its quantizable weights are {layout.names}"
        )


def effective_schedule(model: nn.Module, schedule, layout: ModelLayout | None = None, warn: bool = True
                       ) -> BitSchedule:
    """``schedule`` as ``quantize`` applies it to ``model``: parsed if a string, checked, and with the inputs
    pdbviz cannot quantize (the network's own, those of weights used outside their module) at 32 bits."""
    layout = layout if layout is not None else discover(model)
    if isinstance(schedule, str):
        try:
            return BitSchedule.from_string(schedule, model)
        except ValueError as err:
            left = uncounted(layout)
            if not left:
                raise
            raise ValueError(f"{err}; not counted as layers: {left}") from None
    if not isinstance(schedule, BitSchedule):
        raise TypeError(f"schedule must be a BitSchedule or its one-line string, got {type(schedule).__name__}")
    check_schedule(model, schedule, layout)
    first = layout.names[0] if len(layout) else None
    fixed, blocked = {}, []
    for name, spec in schedule.items():
        entry = layout[name]
        if spec.a_bits != FULL_PRECISION and (name == first or not entry.input_quantizable):
            if name != first:
                blocked.append(f"{name} ({entry.input_note})")
            spec = BitSpec(spec.w_bits, FULL_PRECISION, spec.weight_mode, spec.act_mode)
        fixed[name] = spec
    if blocked and warn:
        warnings.warn("these inputs stay at 32 bits, as pdbviz cannot quantize them: " + "; ".join(blocked),
                      stacklevel=3)
    return BitSchedule(fixed)


def copy_model(model: nn.Module) -> nn.Module:
    """A deep copy of ``model``, also when old-style ``torch.nn.utils.weight_norm`` holds a computed weight.

    That hook keeps ``module.weight`` as a tensor computed from ``weight_g`` and
    ``weight_v``, which ``copy.deepcopy`` refuses; the copy gets its value
    detached, and the hook recomputes it from the copy's own ``g`` and ``v`` on
    every forward pass.

    Example:
        >>> old = torch.nn.utils.weight_norm(nn.Linear(3, 2))  # doctest: +SKIP
        >>> copy_model(old).weight_g.shape  # doctest: +SKIP
        torch.Size([2, 1])
    """
    from torch.nn.utils.weight_norm import WeightNorm

    computed = []
    for module in model.modules():
        for hook in module._forward_pre_hooks.values():
            if isinstance(hook, WeightNorm) and isinstance(module.__dict__.get(hook.name), torch.Tensor):
                computed.append((module, hook.name, module.__dict__[hook.name]))
    try:
        for module, name, value in computed:
            module.__dict__[name] = value.detach()
        return copy.deepcopy(model)
    finally:
        for module, name, value in computed:
            module.__dict__[name] = value


def uncounted(layout: ModelLayout) -> str:
    """The parameters that stay float because pdbviz cannot quantize them where they are (a module of no known
    weight kind, an old-style ``weight_norm``), grouped, with what to do (``''`` when there are none)."""
    groups: dict[str, list[str]] = {}
    for f in layout.floats:
        if f.reason.endswith("parameter, not a weight kind"):
            key = f"{f.reason.split(' ')[1]}, a kind unknown to pdbviz (pdbviz.quant.register_weight_kind adds one)"
        elif f.reason.startswith("recomputed by an old-style"):
            key = ("old-style torch.nn.utils.weight_norm/spectral_norm: use torch.nn.utils.parametrizations' "
                   "versions, or remove_weight_norm first")
        else:
            continue
        groups.setdefault(key, []).append(f.name)
    return "; ".join(f"{', '.join(names[:6])}{f' and {len(names) - 6} more' if len(names) > 6 else ''} ({key})"
                     for key, names in groups.items())


def quantize(model: nn.Module, schedule: BitSchedule | str, example_input=None, calibrate=None) -> nn.Module:
    """A new model whose weights named in ``schedule`` are quantized wherever they are used.

    ``model`` is left untouched (it is deep-copied), so a notebook can compare
    both. ``schedule`` may be a ``BitSchedule`` or its one-line string, parsed
    against the model (its stages and its weights in forward order). Weights
    already quantized get the new spec; weights the schedule does not name
    are kept as they are.

    Each weight gets a parametrization (``WeightQuant``), so every use of it
    computes with the quantized tensor: its module's own forward, a parent's
    functional call, a tied or aliased parameter. The network's own input
    (the first weight's) and inputs pdbviz cannot reach stay at 32 bits; the
    quantized model's ``schedule_of`` says so.

    Args:
        model: any ``nn.Module``.
        schedule: a ``BitSchedule`` or a one-line string such as ``"8-4-2-1"``.
        example_input: one batch the model accepts, to find the forward order
            and where each weight is used (default: from ``pdbviz_info``).
        calibrate: inputs (a tensor, or an iterable of batches such as a
            ``DataLoader``) on which to re-estimate BatchNorm statistics
            under the quantized weights (post-training quantization; see
            ``recalibrate_batchnorm``).

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> q = quantize(net, "8-1")
        >>> schedule_of(q).w_bits
        [8, 1]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layout = discover(model, example_input)
    if not len(layout):
        raise ValueError(f"{type(model).__name__} has no quantizable weight (Conv, Linear, Embedding, attention or "
                         "recurrent layers); see pdbviz.quant.kinds to register another kind")
    schedule = effective_schedule(model, schedule, layout)
    new = copy_model(model)
    modules = dict(new.named_modules())
    for name, spec in schedule.items():
        entry = layout[name]
        path, pname = entry.owners[0]
        wq = weight_quant(modules[path], pname)
        if wq is not None:
            wq.set_spec(spec)
            for path, pname in entry.owners:
                sync_input_hook(modules[path], wq)
        elif spec.is_float:
            continue  # nothing to do: the float weight and input, untouched
        else:
            wq = WeightQuant(spec, entry.inputs if entry.input_quantizable else None)
            for path, pname in entry.owners:
                attach(modules[path], pname, wq)
        if wq.weight_quantizer is not None:
            with torch.no_grad():
                wq.weight_quantizer.init_from(_original(modules[path], pname))
    if calibrate is not None:
        recalibrate_batchnorm(new, calibrate)
    return new


def float_weight(model: nn.Module, name: str) -> torch.Tensor:
    """The float value of the weight ``name`` (a ``quantizable_layers`` name), before pdbviz's quantizer.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 2))
        >>> float_weight(quantize(net, "2"), "0").equal(net[0].weight)
        True
    """
    layout = discover(model)
    if name not in layout:
        raise ValueError(f"{type(model).__name__} has no quantizable weight {name!r}; it has {layout.names}")
    path, pname = layout[name].owners[0]
    return _original(model.get_submodule(path), pname)


def _original(module: nn.Module, pname: str) -> torch.Tensor:
    """The weight as its module computes it before pdbviz's quantizer."""
    wq = weight_quant(module, pname)
    if wq is None:
        return getattr(module, pname).detach()
    plist = module.parametrizations[pname]
    value = plist.original if len(plist) == 1 and hasattr(plist, "original") else None
    if value is None:
        saved, wq.weight_quantizer = wq.weight_quantizer, None
        try:
            value = getattr(module, pname)
        finally:
            wq.weight_quantizer = saved
    return value.detach()


def dequantize(model: nn.Module, bake: bool = False) -> nn.Module:
    """A new model with pdbviz's quantization removed; ``bake=True`` keeps the quantized weight values."""
    new = copy_model(model)
    targets = [(m, p) for m in new.modules() for p in list(getattr(m, "parametrizations", {}).keys())
               if weight_quant(m, p) is not None]
    values = []
    if bake:  # every value first: tied owners share one stored tensor
        was_training = new.training
        new.eval()
        with torch.no_grad():
            values = [getattr(m, p).detach().clone() for m, p in targets]
        new.train(was_training)
    for i, (m, p) in enumerate(targets):
        detach(m, p, values[i] if bake else None)
    return new


def schedule_of(model: nn.Module) -> BitSchedule | None:
    """The schedule a quantized model carries, in forward order (None if nothing is quantized)."""
    layout = discover(model)
    modules = dict(model.named_modules())
    items = []
    for entry in layout.entries:
        path, pname = entry.owners[0]
        wq = weight_quant(modules[path], pname)
        if wq is not None:
            items.append((entry.name, wq.spec))
    return BitSchedule(items) if items else None


def layer_specs(model: nn.Module, names: Sequence[str] | None = None) -> dict[str, BitSpec]:
    """Spec of each quantizable weight (float ones get ``BitSpec()``), in forward order."""
    current = schedule_of(model) or {}
    names = discover(model).names if names is None else list(names)
    return {n: current.get(n, BitSpec()) for n in names}


def _batches(inputs) -> Iterable[torch.Tensor]:
    if isinstance(inputs, torch.Tensor):
        return (inputs[i:i + 256] for i in range(0, len(inputs), 256))
    return (b[0] if isinstance(b, (tuple, list)) else b for b in inputs)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, inputs, max_batches: int | None = None) -> nn.Module:
    """Re-estimate BatchNorm running statistics (in place); returns the model in eval mode.

    Quantizing weights changes the scale of each layer's output, so the
    statistics the float model learned no longer fit: this is the standard
    remedy for post-training quantization (pdbviz.calibrate takes any data).

    Args:
        model: the (quantized) model.
        inputs: a tensor of inputs, or an iterable of batches (tensors or
            ``(input, label)`` tuples, as a ``DataLoader`` yields).
        max_batches: stop after this many batches.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model.eval()
    saved = [m.momentum for m in bns]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.eval()
    for m in bns:
        m.train()
    seen = 0
    try:
        for i, xb in enumerate(_batches(inputs)):
            if max_batches is not None and i >= max_batches:
                break
            model(xb.to(device))
            seen += 1
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        model.eval()
    if not seen:
        raise ValueError("calibration inputs are empty: give at least one batch")
    return model
