"""Find every weight a model computes with, in the order the forward pass first uses it.

The unit pdbviz quantizes is a weight *tensor* (see ``kinds``), named by its
owner's fully-qualified name, plus the parameter name where the owner has
several (``lstm.weight_hh_l0``). A tensor shared by several modules (a tied
embedding and head) or one module registered under two names is one entry.

With an example input (given, or from the model's ``pdbviz_info``), one
forward pass in eval mode under a ``TorchDispatchMode`` sees every operation
that touches a weight, wherever it happens: in its module's own forward, or in
a parent that passes ``module.weight`` to a functional op (the attention's
``out_proj``, ``F.linear(x, self.fc.weight)``). That gives the order of first
use, where each weight is used, and the multiply-accumulates (MACs) of each,
from torch's own FLOP formulas. Tensors computed from a weight (a
standardised or weight-normalised weight, a cast) stay attributed to it.
Without an example input the order comes from symbolic tracing (``torch.fx``)
where it works, else from registration order, with a warning; MACs are then
unknown. Both passes live in ``forward_trace``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils import parametrize

from .forward_trace import join_name, trace_forward, trace_fx
from .kinds import InputSlots, kind_of
from .protocol import model_info

#: how a weight was used in the example forward pass
USES = ("module", "functional", "unused", "unknown")
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)


@dataclass(frozen=True)
class WeightEntry:
    """One quantizable weight tensor.

    Attributes:
        name: its name in schedules and tables.
        owners: ``(module path, parameter name)`` of every place it lives; the first names it.
        kind: the owner's class, plus the parameter name where the owner has several weights.
        shape: the tensor's shape.
        inputs: the owner's forward arguments it multiplies, or None when its kind has no quantizable input.
        use: ``"module"`` (only inside its owner's forward), ``"functional"`` (also elsewhere, e.g.
            a parent's ``F.linear``), ``"unused"`` (not touched by the example forward) or
            ``"unknown"`` (no example forward was run).
        macs: multiply-accumulates per sample in the example forward (NaN when unknown).
        stored: values the float model stores for it (more than ``numel`` when a
            parametrization such as ``weight_norm`` computes it from several tensors).
    """

    name: str
    owners: tuple[tuple[str, str], ...]
    kind: str
    shape: tuple[int, ...]
    inputs: InputSlots | None
    use: str
    macs: float = math.nan
    stored: int = 0

    @property
    def numel(self) -> int:
        """Number of elements of the weight."""
        return math.prod(self.shape)

    @property
    def input_quantizable(self) -> bool:
        """True when pdbviz can quantize what this weight multiplies (its owner's input)."""
        return self.inputs is not None and self.use == "module"

    @property
    def input_note(self) -> str:
        """Why the input of this weight cannot be quantized ('' when it can)."""
        if self.input_quantizable:
            return ""
        if self.inputs is None:
            return "its inputs are indices or stay inside a fused kernel"
        if self.use == "functional":
            return "its weight is used outside its module's forward"
        return "its module's forward was not seen running"


@dataclass(frozen=True)
class FloatTensor:
    """A parameter or buffer that stays in float, and why."""

    name: str
    numel: int
    element_bits: int
    reason: str


@dataclass(frozen=True)
class ModelLayout:
    """What ``discover`` found: the quantizable weights in forward order, and everything else."""

    entries: tuple[WeightEntry, ...]
    floats: tuple[FloatTensor, ...]
    traced: str  # "forward", "fx" or "registration"
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        self._index.update({e.name: e for e in self.entries})

    @property
    def names(self) -> list[str]:
        """Names of the entries, in forward order."""
        return [e.name for e in self.entries]

    def __getitem__(self, name: str) -> WeightEntry:
        return self._index[name]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __len__(self) -> int:
        return len(self.entries)


# -- candidates -----------------------------------------------------------------------------------------------------
def _originals(module: nn.Module, pname: str) -> tuple[torch.Tensor, ...] | None:
    """The stored tensors behind ``module.<pname>`` (its originals when parametrized), or None."""
    if parametrize.is_parametrized(module, pname):
        plist = module.parametrizations[pname]
        if hasattr(plist, "original"):
            return (plist.original,)
        return tuple(getattr(plist, f"original{i}") for i in range(len(plist.original_names))) \
            if hasattr(plist, "original_names") else tuple(p for n, p in plist.named_parameters(recurse=False))
    value = module._parameters.get(pname)
    return (value,) if isinstance(value, nn.Parameter) else None


def stored_tensors(module: nn.Module, pname: str) -> tuple[torch.Tensor, ...] | None:
    """The tensors ``module`` stores for its weight ``pname`` (the originals of a parametrized weight), or None.

    Example:
        >>> [tuple(t.shape) for t in stored_tensors(nn.Linear(3, 2), "weight")]
        [(2, 3)]
    """
    return _originals(module, pname)


def _candidates(model: nn.Module):
    """Entries (unordered) and the tensors that are not weights of a kind, each with a reason."""
    groups: dict[tuple[int, ...], dict] = {}
    skipped: dict[int, str] = {}
    for path, module in model.named_modules():
        kind = kind_of(module)
        if kind is None:
            continue
        pnames = kind.params(module)
        for pname in pnames:
            originals = _originals(module, pname)
            if originals is None:
                for suffix in ("_g", "_v", "_orig"):  # torch.nn.utils.weight_norm / spectral_norm, old style
                    stored = module._parameters.get(pname + suffix)
                    if isinstance(stored, nn.Parameter):
                        skipped[id(stored)] = ("recomputed by an old-style weight_norm/spectral_norm hook; "
                                               "torch.nn.utils.parametrizations' versions can be quantized")
                continue
            key = tuple(id(t) for t in originals)
            group = groups.setdefault(key, {"owners": [], "originals": originals, "modules": []})
            group["owners"].append((path, pname))
            group["modules"].append((module, kind, len(pnames) > 1))
    _add_holders(model, groups)
    return groups, skipped


def _add_holders(model: nn.Module, groups: dict) -> None:
    """Add, as owners without a kind, the other modules that hold a weight's stored tensor (a head tied to an
    embedding by holding its Parameter and used as ``h @ head.weight.T``): a tensor is one weight wherever it is."""
    by_tensor = {key[0]: g for key, g in groups.items() if len(key) == 1}
    for path, module in model.named_modules():
        if "parametrizations" in path.split(".") or kind_of(module) is not None:
            continue
        pnames = list(module._parameters)
        pnames += [p for p in getattr(module, "parametrizations", {}) if p not in pnames]
        for pname in pnames:
            originals = _originals(module, pname)
            group = by_tensor.get(id(originals[0])) if originals and len(originals) == 1 else None
            if group is not None and (path, pname) not in group["owners"]:
                group["owners"].append((path, pname))
                group["modules"].append((module, None, False))


_join = join_name


# -- the layout -------------------------------------------------------------------------------------------------------
def _fingerprint(model: nn.Module) -> tuple:
    """What the layout depends on: the kinds, their weights' shapes, and which weights are shared."""
    ids: dict[int, int] = {}
    out = []
    for path, m in model.named_modules():
        kind = kind_of(m)
        if kind is None:
            continue
        weights = []
        for pname in kind.params(m):
            originals = _originals(m, pname) or ()
            weights.append((pname, tuple((tuple(t.shape), ids.setdefault(id(t), len(ids))) for t in originals)))
        out.append((path, parametrize.type_before_parametrizations(m).__name__, tuple(weights)))
    return tuple(out)


def discover(model: nn.Module, example_input=None) -> ModelLayout:
    """Find the quantizable weights of ``model`` in forward order, and what stays float.

    Args:
        model: any ``nn.Module`` (it is not changed; the example forward runs in
            eval mode under ``no_grad`` and the mode is restored).
        example_input: one batch the model accepts (a tensor, a tuple of
            positional arguments or a dict of keyword arguments). Default: a
            zero batch of ``pdbviz_info.input_shape`` when the model has one.

    The result is cached on the model until its weights change shape or kind.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    fingerprint = _fingerprint(model)
    cached = model.__dict__.get("_pdbviz_layout")
    if example_input is None and cached is not None and cached[0] == fingerprint:
        return cached[1]
    if example_input is None:
        param = next(model.parameters(), None)
        example_input = model_info(model).example_input(device=param.device if param is not None else None)
    groups_by_key, skipped = _candidates(model)
    groups = list(groups_by_key.values())
    macs: dict[int, float] = {}
    if example_input is not None:
        order, macs, functional = trace_forward(model, example_input, groups)
        traced, seen = "forward", set(order)
        uses = {e: ("functional" if e in functional else "module") if e in seen else "unused"
                for e in range(len(groups))}
    else:
        fx = trace_fx(model, groups) if groups else ([], set())
        if fx is None:
            warnings.warn(f"could not trace {type(model).__name__} to find its forward order; using registration "
                          "order. Pass example_input= (one batch of inputs) to get the forward order, where each "
                          "weight is used and its MACs.", stacklevel=3)
            order, functional, traced = [], set(), "registration"
        else:
            (order, functional), traced = fx, "fx"
        seen = set(order)
        uses = {e: ("functional" if e in functional else "module" if e in seen else
                    "unused" if traced == "fx" else "unknown") for e in range(len(groups))}
    order = order + [e for e in range(len(groups)) if e not in order]
    entries = [_entry(groups[e], uses[e], macs.get(e, math.nan if traced != "forward" else 0.0)) for e in order]
    layout = ModelLayout(tuple(entries), _floats(model, groups, skipped), traced)
    if traced == "forward" or cached is None or cached[1].traced != "forward":
        model.__dict__["_pdbviz_layout"] = (fingerprint, layout)
    return layout


def _entry(group: dict, use: str, macs: float) -> WeightEntry:
    (path, pname), (module, kind, several) = group["owners"][0], group["modules"][0]
    base = parametrize.type_before_parametrizations(module).__name__
    name = _join(path, pname) if several else (path or pname)
    slots = [k.inputs(p) if k is not None else None for (_, k, _), (_, p) in zip(group["modules"], group["owners"])]
    inputs = slots[0] if len(slots) == 1 or all(s == slots[0] for s in slots) else None
    shape = tuple(getattr(module, pname).shape) if not parametrize.is_parametrized(module, pname) else \
        tuple(module.parametrizations[pname].original.shape) if hasattr(module.parametrizations[pname], "original") \
        else tuple(_shape_of(module, pname))
    stored = sum(o.numel() for o in group["originals"])
    return WeightEntry(name, tuple(group["owners"]), f"{base}.{pname}" if several else base, shape, inputs, use, macs,
                       stored)


def _shape_of(module: nn.Module, pname: str):
    with torch.no_grad():
        return getattr(module, pname).shape


def _floats(model: nn.Module, groups: list[dict], skipped: dict[int, str]) -> tuple[FloatTensor, ...]:
    covered = {id(t) for g in groups for t in g["originals"]}
    out, seen = [], set()
    for path, module in model.named_modules():
        buffers = [(n, b) for n, b in module.named_buffers(recurse=False)
                   if n not in module._non_persistent_buffers_set]  # not in the state_dict: never stored
        for pname, t in list(module.named_parameters(recurse=False)) + buffers:
            if id(t) in seen or id(t) in covered:
                continue
            seen.add(id(t))
            name = _display_name(path, pname)
            out.append(FloatTensor(name, t.numel(), t.element_size() * 8, skipped.get(id(t)) or
                                   _reason(module, pname, t, model)))
    return tuple(out)


def _display_name(path: str, pname: str) -> str:
    """``x.parametrizations.weight.original`` -> ``x.weight``; other names as they are."""
    parts = path.split(".") if path else []
    if len(parts) >= 2 and parts[-2] == "parametrizations":
        return ".".join(parts[:-2] + [parts[-1]])
    return _join(path, pname)


def _reason(module: nn.Module, pname: str, t: torch.Tensor, model: nn.Module) -> str:
    from .quantizers import ActivationQuantizer, WeightQuantizer

    if isinstance(module, (WeightQuantizer, ActivationQuantizer)):
        return "quantizer state"
    if not isinstance(t, nn.Parameter):
        return "buffer"
    if pname.startswith("bias") or pname.endswith("_bias"):
        return "bias"
    if isinstance(module, _NORMS) or "norm" in type(module).__name__.lower():
        return "normalisation"
    if kind_of(module) is None:
        owner = type(module).__name__
        return f"{'an' if owner[:1] in 'AEIOU' else 'a'} {owner} parameter, not a weight kind"
    return "not a quantizable weight of its kind"


def quantizable_layers(model: nn.Module, example_input=None) -> list[str]:
    """Names of the model's quantizable weights, in the order the forward pass first uses them.

    See ``discover`` for how the order is found and what an entry is.

    Example:
        >>> quantizable_layers(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
        ['0', '2']
    """
    return discover(model, example_input).names
