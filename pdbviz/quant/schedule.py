"""Bit-width schedules: a ``BitSchedule`` maps each weight of a model to its ``BitSpec``.

One-line form (``BitSchedule.from_string`` / ``to_string``, grammar in
``schedule_text``): ``"8-4-2-1"`` (one value per stage, the last held),
``"8,6,4,2,2,1"`` (one per layer), ``"4/4"`` (W4A4), ``"32-1/8"``,
``"symmetric:2"`` (TWN ternary). Each value is an integer in 1..8, or 32 for
full precision; without ``/INPUTS`` layer inputs stay at full precision.

*Stages*: a model's ``pdbviz_info.stages`` (zoo models declare theirs;
torchvision ResNets are recognised: stem, ``layer1`` .. ``layer4``, ``fc``) group
its layers; every other model has one stage per layer. So ``"8-4-2-1"`` on
resnet18 gives the stem 8 bits, ``layer1`` 4, ``layer2`` 2 and the rest 1, the
thesis's 8-4-2-1 network; ``per="layer"`` gives one value per layer instead.
More values than stages (or layers) is an error that says how many there are.

Given a model, the schedule follows what the model can compute: the network's
own input (the first layer's) and the inputs of weights used outside their
module's forward (``discover``) stay at 32 bits whatever the string says.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from torch import nn

from .bitspec import BitSpec
from .discovery import discover
from .protocol import model_info, stage_indices
from .registry import ACTIVATION_QUANTIZERS, FULL_PRECISION, WEIGHT_QUANTIZERS, check_bits
from .schedule_text import DEFAULT_MODE, compress, expand, split_mode

#: the version of ``BitSchedule.to_dict``'s format
SCHEDULE_FORMAT_VERSION = 2
#: what the values of a dash form are for (``from_string``'s ``per``)
PER = ("auto", "stage", "layer")
#: how ``decreasing`` and ``increasing`` step between ``start`` and ``end``
RAMPS = ("halving", "linear")


def _target(layers) -> tuple[list[str], nn.Module | None]:
    """Accept a model or a sequence of layer names; return the names (and the model, if given)."""
    if isinstance(layers, nn.Module):
        return discover(layers).names, layers
    if isinstance(layers, str) or not isinstance(layers, Iterable):
        raise TypeError(
            f"layers must be a torch model or a list of layer names, got {type(layers).__name__}"
        )
    names = list(layers)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"layers must contain layer names (str), got {name!r}")
    if not names:
        raise ValueError("layers is empty: a schedule needs at least one layer")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"layers names a layer more than once: {dup}")
    return names, None


def input_bits_allowed(model: nn.Module) -> dict[str, bool]:
    """For each quantizable weight of ``model``: can its input be quantized?

    False for the first weight in forward order (the network's own input stays
    float) and for weights whose input pdbviz cannot reach (see
    ``WeightEntry.input_note``).
    """
    layout = discover(model)
    return {e.name: i > 0 and e.input_quantizable for i, e in enumerate(layout.entries)}


def _groups(model: nn.Module | None, names: list[str], per: str, groups) -> list[int] | None:
    if groups is not None:
        return list(groups)
    if per not in PER:
        raise ValueError(f"per must be one of {PER}, got {per!r}")
    if per == "layer" or model is None:
        return None
    if per == "auto" and not model_info(model).stages:
        return None
    return stage_indices(model, names)


def _halving(n: int, start: int, end: int, groups: Sequence[int] | None) -> list[int]:
    if groups is None:
        groups = list(range(n))
    if len(groups) != n:
        raise ValueError(f"groups has {len(groups)} entries for {n} layers; give one group index per layer")
    bits, out, previous = start, [], groups[0]
    for g in groups:
        if g != previous:
            bits, previous = max(end, bits // 2), g
        out.append(bits)
    return out


def _linear(n: int, start: int, end: int) -> list[int]:
    if n == 1:
        return [start]
    return [int(round(start + (end - start) * i / (n - 1))) for i in range(n)]


def _ramp_argument(ramp: str, kind: str | None, method: str) -> tuple[str, str]:
    """``ramp``, or the value of the deprecated ``kind=`` (with a DeprecationWarning), and the name it came by."""
    if kind is None:
        return ramp, "ramp"
    warnings.warn(f"BitSchedule.{method}(kind=...) is deprecated; use ramp=... (the same values: {RAMPS})",
                  DeprecationWarning, stacklevel=3)
    return kind, "kind"


def _ramp(n: int, high: int, low: int, ramp: str, groups, what: str = "ramp") -> list[int]:
    if ramp == "halving":
        return _halving(n, high, low, groups)
    if ramp == "linear":
        if groups is not None:
            raise ValueError(f"groups is only used with {what}='halving'")
        return _linear(n, high, low)
    raise ValueError(f"{what} must be 'halving' or 'linear', got {ramp!r}")


class BitSchedule(Mapping[str, BitSpec]):
    """An ordered mapping from fully-qualified layer names to ``BitSpec``.

    The order is the model's forward order when built from a model or from
    ``quantizable_layers(model)``. Layers a schedule does not name stay float.

    Example:
        >>> s = BitSchedule.from_string("8-4-2-1", ["c1", "c2", "c3", "f1", "f2"])
        >>> s.w_bits
        [8, 4, 2, 1, 1]
        >>> s.to_string()
        '8-4-2-1'
    """

    def __init__(self, specs: Mapping[str, BitSpec | int] | Iterable[tuple[str, BitSpec | int]]):
        items = specs.items() if isinstance(specs, Mapping) else specs
        self._specs: dict[str, BitSpec] = {}
        for name, spec in items:
            if not isinstance(name, str) or not name:
                raise ValueError(f"layer names must be non-empty strings, got {name!r}")
            if name in self._specs:
                raise ValueError(f"layer {name!r} appears twice in the schedule")
            if not isinstance(spec, BitSpec):
                spec = BitSpec(check_bits(spec, f"bits of layer {name!r}"))
            self._specs[name] = spec
        if not self._specs:
            raise ValueError("a BitSchedule needs at least one layer")

    # -- Mapping protocol -------------------------------------------------
    def __getitem__(self, name: str) -> BitSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"layer {name!r} is not in this schedule; it has {list(self._specs)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BitSchedule):
            return NotImplemented
        return list(self._specs.items()) == list(other._specs.items())

    def __hash__(self) -> int:
        return hash(tuple(self._specs.items()))

    def __repr__(self) -> str:
        try:
            text = self.to_string()
        except ValueError:
            text = "mixed weight modes"
        return f"BitSchedule({text!r}, layers={list(self._specs)})"

    # -- views ------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        """Layer names in forward order."""
        return list(self._specs)

    @property
    def w_bits(self) -> list[int]:
        """Weight bits of each layer, in forward order (32 = full precision)."""
        return [s.w_bits for s in self._specs.values()]

    @property
    def a_bits(self) -> list[int]:
        """Input bits of each layer, in forward order (32 = full precision)."""
        return [s.a_bits for s in self._specs.values()]

    def replace(self, name: str, **changes) -> "BitSchedule":
        """A copy with one layer's spec changed, e.g. ``s.replace("fc", w_bits=2)``."""
        spec = self[name]
        new = dict(self._specs)
        new[name] = BitSpec(**{**asdict(spec), **changes})
        return BitSchedule(new)

    # -- constructors -----------------------------------------------------
    @classmethod
    def from_list(cls, layers, w_bits: Sequence[int | None], a_bits=None, weight_mode: str = "dorefa",
                  act_mode: str = "dorefa") -> "BitSchedule":
        """One weight bit-width per layer; ``a_bits`` is one value for all layers or a list.

        Given a model, inputs that cannot be quantized (the network's own input,
        weights used outside their module) get 32 bits.

        Example:
            >>> BitSchedule.from_list(["a", "b"], [8, 2]).w_bits
            [8, 2]
        """
        names, model = _target(layers)
        w = list(w_bits)
        if len(w) != len(names):
            raise ValueError(f"w_bits has {len(w)} values for {len(names)} layers {names}; give one per layer")
        if a_bits is None or isinstance(a_bits, int):
            a = [a_bits] * len(names)
        else:
            a = list(a_bits)
            if len(a) != len(names):
                raise ValueError(f"a_bits has {len(a)} values for {len(names)} layers; give one per layer or one value")
        if model is not None:
            allowed = input_bits_allowed(model)
            a = [ab if allowed[n] else None for n, ab in zip(names, a)]
        return cls((n, BitSpec(wb, ab, weight_mode, act_mode)) for n, wb, ab in zip(names, w, a))

    @classmethod
    def uniform(cls, layers, w_bits: int | None, a_bits: int | None = None, weight_mode: str = "dorefa",
                act_mode: str = "dorefa") -> "BitSchedule":
        """Every layer at ``w_bits``; inputs at ``a_bits`` (``None``: full precision).

        Example:
            >>> BitSchedule.uniform(["a", "b"], 4, 4).to_string()
            '4/4'
        """
        names, model = _target(layers)
        return cls.from_list(model if model is not None else names, [w_bits] * len(names), a_bits, weight_mode,
                             act_mode)

    @classmethod
    def decreasing(
        cls, layers, start: int = 8, end: int = 1, ramp: str = "halving", a_bits=None,
        groups: Sequence[int] | None = None, weight_mode: str = "dorefa", per: str = "auto", *, kind: str | None = None,
    ) -> "BitSchedule":
        """Bit-widths that decrease with depth, the paper's proposal.

        ``ramp="halving"``: ``start`` for the first stage, halved at each
        following stage, never below ``end``: 8-4-2-1-1-... Stages are the
        model's (see the module docstring), ``groups`` (a stage index per layer)
        or one per layer (``per="layer"``).
        ``ramp="linear"``: rounded linear interpolation from ``start`` to ``end`` over the layers.
        (``kind=`` is the deprecated name of ``ramp``.)

        Example:
            >>> BitSchedule.decreasing(list("abcde")).w_bits
            [8, 4, 2, 1, 1]
            >>> BitSchedule.decreasing(list("abcd"), ramp="linear").w_bits
            [8, 6, 3, 1]
        """
        ramp, what = _ramp_argument(ramp, kind, "decreasing")
        names, model = _target(layers)
        start, end = check_bits(start, "start", allow_float=False), check_bits(end, "end", allow_float=False)
        if start < end:
            raise ValueError(f"a decreasing schedule needs start >= end, got start={start}, end={end}")
        grp = _groups(model, names, per, groups) if ramp == "halving" else groups
        bits = _ramp(len(names), start, end, ramp, grp, what)
        return cls.from_list(model if model is not None else names, bits, a_bits, weight_mode)

    @classmethod
    def increasing(
        cls, layers, start: int = 1, end: int = 8, ramp: str = "halving", a_bits=None,
        groups: Sequence[int] | None = None, weight_mode: str = "dorefa", per: str = "auto", *, kind: str | None = None,
    ) -> "BitSchedule":
        """The control experiment: the mirror image of ``decreasing`` (same arguments).

        Example:
            >>> BitSchedule.increasing(list("abcde")).w_bits
            [1, 1, 2, 4, 8]
        """
        ramp, what = _ramp_argument(ramp, kind, "increasing")
        names, model = _target(layers)
        start, end = check_bits(start, "start", allow_float=False), check_bits(end, "end", allow_float=False)
        if start > end:
            raise ValueError(f"an increasing schedule needs start <= end, got start={start}, end={end}")
        grp = _groups(model, names, per, groups) if ramp == "halving" else groups
        rev_groups = None if grp is None else list(grp)[::-1]
        bits = _ramp(len(names), end, start, ramp, rev_groups, what)[::-1]
        return cls.from_list(model if model is not None else names, bits, a_bits, weight_mode)

    # -- one-line form ----------------------------------------------------
    @classmethod
    def from_string(cls, text: str, layers, per: str = "auto", groups: Sequence[int] | None = None) -> "BitSchedule":
        """Parse the one-line form described in the module docstring.

        Args:
            text: e.g. ``"8-4-2-1"``, ``"4/4"``, ``"symmetric:2"``.
            layers: the model (stages and input rules apply) or its layer names.
            per: what the values of a dash form are for: ``"auto"`` (the model's
                stages when it has them, else layers), ``"stage"`` or ``"layer"``.
            groups: a stage index per layer, overriding the model's stages.

        Example:
            >>> BitSchedule.from_string("8-4/8", ["a", "b", "c"]).a_bits
            [8, 8, 8]
        """
        if not isinstance(text, str):
            raise TypeError(f"schedule text must be a str, got {type(text).__name__}")
        names, model = _target(layers)
        grp = _groups(model, names, per, groups)
        parts = text.strip().split("/")
        if len(parts) > 2:
            raise ValueError(f"cannot parse schedule {text!r}: expected WEIGHTS or WEIGHTS/INPUTS, "
                             f"found {len(parts) - 1} '/'")
        w_mode, w_part = split_mode(parts[0], WEIGHT_QUANTIZERS, text, "weight")
        w = expand(w_part, names, grp, text, "weight")
        if len(parts) == 2:
            a_mode, a_part = split_mode(parts[1], ACTIVATION_QUANTIZERS, text, "input")
            a = expand(a_part, names, grp, text, "input")
        else:
            a_mode, a = DEFAULT_MODE, [None] * len(names)
        try:
            return cls.from_list(model if model is not None else names, w, a, w_mode, a_mode)
        except ValueError as err:
            raise ValueError(f"in schedule {text!r}: {err}") from None

    def to_string(self, model: nn.Module | None = None) -> str:
        """The shortest one-line form.

        Without ``model`` the dash form has one value per layer, so
        ``from_string(s.to_string(), s.layers) == s``. With the model the
        schedule was made for, values are given per stage where the model has
        stages (a comma list where a stage mixes bit-widths), so that
        ``from_string(s.to_string(model), model) == s``.
        """
        w_modes = {s.weight_mode for s in self._specs.values()}
        a_modes = {s.act_mode for s in self._specs.values() if s.a_bits != FULL_PRECISION}
        if len(w_modes) > 1 or len(a_modes) > 1:
            raise ValueError("this schedule mixes weight or input modes; use to_dict() to share it")
        w_mode, a_mode = w_modes.pop(), (a_modes.pop() if a_modes else "dorefa")
        groups = _groups(model, self.layers, "auto", None) if model is not None else None
        text = compress(self.w_bits, groups)
        if w_mode != "dorefa":
            text = f"{w_mode}:{text}"
        if any(b != FULL_PRECISION for b in self.a_bits):
            a_bits = self.a_bits
            if model is not None:  # inputs that must stay float take their neighbours' value in the string
                allowed = input_bits_allowed(model)
                fill = {}
                for g, b, n in zip(groups or range(len(a_bits)), a_bits, self.layers):
                    if allowed.get(n):
                        fill.setdefault(g, b)
                last = next((b for b, n in zip(a_bits, self.layers) if allowed.get(n)), FULL_PRECISION)
                a_bits = [b if allowed.get(n) else fill.get(g, last)
                          for g, b, n in zip(groups or range(len(a_bits)), a_bits, self.layers)]
            text += "/" + ("" if a_mode == "dorefa" else f"{a_mode}:") + compress(a_bits, groups)
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with a format version."""
        return {
            "format_version": SCHEDULE_FORMAT_VERSION,
            "layers": [{"name": n, **s.to_dict()} for n, s in self._specs.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BitSchedule":
        """Read what ``to_dict`` wrote (format versions 1 and 2)."""
        if not isinstance(data, Mapping) or "layers" not in data:
            raise ValueError("schedule data must be a mapping with 'format_version' and 'layers'")
        version = data.get("format_version")
        if version not in (1, SCHEDULE_FORMAT_VERSION):
            raise ValueError(
                f"unsupported schedule format_version {version!r}; this pdbviz reads versions 1 and "
                f"{SCHEDULE_FORMAT_VERSION}"
            )
        items = []
        for entry in data["layers"]:
            entry = dict(entry)
            name = entry.pop("name", None)
            unknown = set(entry) - {"w_bits", "a_bits", "weight_mode", "act_mode"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)} for layer {name!r}; allowed: w_bits, a_bits, "
                                 "weight_mode, act_mode")
            items.append((name, BitSpec(**entry)))
        return cls(items)
