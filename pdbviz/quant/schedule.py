"""Bit-width specifications for one layer (BitSpec) and a whole model (BitSchedule).

One-line form (``BitSchedule.from_string`` / ``to_string``)::

    [MODE ":"] WEIGHTS ["/" ACTIVATIONS]

    WEIGHTS, ACTIVATIONS :=  "4"            every layer 4 bits
                          |  "8-4-2-1"      per layer in forward order, the last value
                                            held for the remaining layers
                          |  "8,6,4,2,2,1"  exactly one value per layer
    MODE                 :=  "dorefa" (default) | "symmetric"

Each value is an integer in 1..8, or 32 for full precision. Without the
``/ACTIVATIONS`` part, activations stay at full precision. Examples:
``"8-4-2-1"``, ``"4/4"`` (W4A4), ``"32-1/8"``, ``"symmetric:2"`` (ternary).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from torch import nn

from .discovery import quantizable_layers
from .quantizers import FULL_PRECISION, WEIGHT_QUANTIZERS, check_bits

SCHEDULE_FORMAT_VERSION = 1
WEIGHT_MODES = tuple(WEIGHT_QUANTIZERS)
_TOKEN = re.compile(r"^\d+$")


@dataclass(frozen=True)
class BitSpec:
    """Bit-widths of one layer.

    Args:
        w_bits: weight bits, 1..8 or 32 (``None`` = 32, full precision).
        a_bits: bits of the layer's *input* activations, 1..8 or 32 (``None`` = 32).
            The network's own input is never quantized: ``quantize`` keeps the
            first layer's input at full precision whatever this says.
        weight_mode: ``"dorefa"`` (2^k levels) or ``"symmetric"`` (2^k - 1 levels
            with an exact zero; needs ``w_bits >= 2``).

    Example:
        >>> BitSpec(4, 8)
        BitSpec(w_bits=4, a_bits=8, weight_mode='dorefa')
    """

    w_bits: int = FULL_PRECISION
    a_bits: int = FULL_PRECISION
    weight_mode: str = "dorefa"

    def __post_init__(self) -> None:
        if self.weight_mode not in WEIGHT_MODES:
            raise ValueError(f"weight_mode must be one of {WEIGHT_MODES}, got {self.weight_mode!r}")
        minimum = 2 if self.weight_mode == "symmetric" else 1
        object.__setattr__(self, "w_bits", check_bits(self.w_bits, "w_bits", minimum=minimum))
        object.__setattr__(self, "a_bits", check_bits(self.a_bits, "a_bits"))

    @property
    def is_float(self) -> bool:
        """True when both weights and inputs are at full precision."""
        return self.w_bits == FULL_PRECISION and self.a_bits == FULL_PRECISION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _layer_names(layers) -> list[str]:
    """Accept a model or a sequence of layer names; return the names."""
    if isinstance(layers, nn.Module):
        return quantizable_layers(layers)
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
    return names


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
        return list(self._specs)

    @property
    def w_bits(self) -> list[int]:
        return [s.w_bits for s in self._specs.values()]

    @property
    def a_bits(self) -> list[int]:
        return [s.a_bits for s in self._specs.values()]

    def replace(self, name: str, **changes) -> "BitSchedule":
        """A copy with one layer's spec changed, e.g. ``s.replace("fc", w_bits=2)``."""
        spec = self[name]
        new = dict(self._specs)
        new[name] = BitSpec(**{**asdict(spec), **changes})
        return BitSchedule(new)

    # -- constructors -----------------------------------------------------
    @classmethod
    def from_list(
        cls, layers, w_bits: Sequence[int | None], a_bits=None, weight_mode: str = "dorefa"
    ) -> "BitSchedule":
        """One weight bit-width per layer; ``a_bits`` is one value for all layers or a list.

        Example:
            >>> BitSchedule.from_list(["a", "b"], [8, 2]).w_bits
            [8, 2]
        """
        names = _layer_names(layers)
        w = list(w_bits)
        if len(w) != len(names):
            raise ValueError(f"w_bits has {len(w)} values for {len(names)} layers {names}; give one per layer")
        if a_bits is None or isinstance(a_bits, int):
            a = [a_bits] * len(names)
        else:
            a = list(a_bits)
            if len(a) != len(names):
                raise ValueError(f"a_bits has {len(a)} values for {len(names)} layers; give one per layer or one value")
        return cls((n, BitSpec(wb, ab, weight_mode)) for n, wb, ab in zip(names, w, a))

    @classmethod
    def uniform(cls, layers, w_bits: int | None, a_bits: int | None = None, weight_mode: str = "dorefa") -> "BitSchedule":
        """Every layer at ``w_bits``; activations at ``a_bits`` (``None``: full precision).

        Example:
            >>> BitSchedule.uniform(["a", "b"], 4, 4).to_string()
            '4/4'
        """
        names = _layer_names(layers)
        return cls.from_list(names, [w_bits] * len(names), a_bits, weight_mode)

    @classmethod
    def decreasing(
        cls, layers, start: int = 8, end: int = 1, kind: str = "halving", a_bits=None,
        groups: Sequence[int] | None = None, weight_mode: str = "dorefa",
    ) -> "BitSchedule":
        """Bit-widths that decrease with depth, the paper's proposal.

        ``kind="halving"``: ``start`` for the first layer, halved at each following
        layer (or at each change of ``groups``, e.g. a residual stage index per
        layer), never below ``end``: 8-4-2-1-1-...
        ``kind="linear"``: rounded linear interpolation from ``start`` to ``end``.

        Example:
            >>> BitSchedule.decreasing(list("abcde")).w_bits
            [8, 4, 2, 1, 1]
            >>> BitSchedule.decreasing(list("abcd"), kind="linear").w_bits
            [8, 6, 3, 1]
        """
        names = _layer_names(layers)
        start, end = check_bits(start, "start", allow_float=False), check_bits(end, "end", allow_float=False)
        if start < end:
            raise ValueError(f"a decreasing schedule needs start >= end, got start={start}, end={end}")
        bits = cls._ramp(len(names), start, end, kind, groups)
        return cls.from_list(names, bits, a_bits, weight_mode)

    @classmethod
    def increasing(
        cls, layers, start: int = 1, end: int = 8, kind: str = "halving", a_bits=None,
        groups: Sequence[int] | None = None, weight_mode: str = "dorefa",
    ) -> "BitSchedule":
        """The control experiment: the mirror image of ``decreasing``.

        Example:
            >>> BitSchedule.increasing(list("abcde")).w_bits
            [1, 1, 2, 4, 8]
        """
        names = _layer_names(layers)
        start, end = check_bits(start, "start", allow_float=False), check_bits(end, "end", allow_float=False)
        if start > end:
            raise ValueError(f"an increasing schedule needs start <= end, got start={start}, end={end}")
        rev_groups = None if groups is None else list(groups)[::-1]
        bits = cls._ramp(len(names), end, start, kind, rev_groups)[::-1]
        return cls.from_list(names, bits, a_bits, weight_mode)

    @staticmethod
    def _ramp(n: int, high: int, low: int, kind: str, groups) -> list[int]:
        if kind == "halving":
            return _halving(n, high, low, groups)
        if kind == "linear":
            if groups is not None:
                raise ValueError("groups is only used with kind='halving'")
            return _linear(n, high, low)
        raise ValueError(f"kind must be 'halving' or 'linear', got {kind!r}")

    # -- one-line form ----------------------------------------------------
    @classmethod
    def from_string(cls, text: str, layers) -> "BitSchedule":
        """Parse the one-line form described in the module docstring.

        Example:
            >>> BitSchedule.from_string("8-4/8", ["a", "b", "c"]).a_bits
            [8, 8, 8]
        """
        if not isinstance(text, str):
            raise TypeError(f"schedule text must be a str, got {type(text).__name__}")
        names = _layer_names(layers)
        body, mode = text.strip(), "dorefa"
        if ":" in body:
            mode, body = (p.strip() for p in body.split(":", 1))
            if mode not in WEIGHT_MODES:
                raise ValueError(f"unknown weight mode {mode!r} in {text!r}; allowed: {WEIGHT_MODES}")
        parts = body.split("/")
        if len(parts) > 2:
            raise ValueError(f"cannot parse schedule {text!r}: expected WEIGHTS or WEIGHTS/ACTIVATIONS, found {len(parts) - 1} '/'")
        w = _expand(parts[0], len(names), text, "weight")
        a = _expand(parts[1], len(names), text, "activation") if len(parts) == 2 else [None] * len(names)
        try:
            return cls.from_list(names, w, a, mode)
        except ValueError as err:
            raise ValueError(f"in schedule {text!r}: {err}") from None

    def to_string(self) -> str:
        """The shortest one-line form; ``from_string(s.to_string(), s.layers) == s``."""
        modes = {s.weight_mode for s in self._specs.values()}
        if len(modes) > 1:
            raise ValueError("this schedule mixes weight modes; use to_dict() to share it")
        mode = modes.pop()
        text = _compress(self.w_bits)
        if any(b != FULL_PRECISION for b in self.a_bits):
            text += "/" + _compress(self.a_bits)
        return text if mode == "dorefa" else f"{mode}:{text}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with a format version."""
        return {
            "format_version": SCHEDULE_FORMAT_VERSION,
            "layers": [{"name": n, **s.to_dict()} for n, s in self._specs.items()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "BitSchedule":
        if not isinstance(data, Mapping) or "layers" not in data:
            raise ValueError("schedule data must be a mapping with 'format_version' and 'layers'")
        version = data.get("format_version")
        if version != SCHEDULE_FORMAT_VERSION:
            raise ValueError(
                f"unsupported schedule format_version {version!r}; this pdbviz reads version {SCHEDULE_FORMAT_VERSION}"
            )
        items = []
        for entry in data["layers"]:
            entry = dict(entry)
            name = entry.pop("name", None)
            unknown = set(entry) - {"w_bits", "a_bits", "weight_mode"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)} for layer {name!r}; allowed: w_bits, a_bits, weight_mode")
            items.append((name, BitSpec(**entry)))
        return cls(items)


def _expand(part: str, n: int, text: str, what: str) -> list[int]:
    part = part.strip()
    if not part:
        raise ValueError(f"cannot parse schedule {text!r}: the {what} bits are empty")
    has_dash, has_comma = "-" in part, "," in part
    if has_dash and has_comma:
        raise ValueError(f"cannot parse {part!r} in {text!r}: use either '-' (last value held) or ',' (one value per layer), not both")
    tokens = [t.strip() for t in part.split("," if has_comma else "-")]
    values = []
    for tok in tokens:
        if not _TOKEN.match(tok):
            raise ValueError(f"cannot parse {what} bit-width token {tok!r} in {text!r}: expected an integer in 1..8 or 32")
        values.append(check_bits(int(tok), f"{what} bit-width {tok!r} in {text!r}"))
    if has_comma and len(values) != n:
        raise ValueError(f"{text!r} gives {len(values)} comma-separated {what} values for {n} layers; give exactly {n} or use '-'")
    if len(values) > n:
        raise ValueError(f"{text!r} gives {len(values)} {what} values for only {n} layers")
    return values + [values[-1]] * (n - len(values))


def _compress(values: list[int]) -> str:
    """Shortest dash form: drop the tail that repeats the last kept value."""
    k = len(values)
    while k > 1 and values[k - 1] == values[k - 2]:
        k -= 1
    return "-".join(str(v) for v in values[:k])
