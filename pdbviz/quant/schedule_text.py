"""The one-line form of a schedule: parsing its parts and writing the shortest one.

Grammar (``BitSchedule.from_string`` / ``to_string``)::

    [WMODE ":"] WEIGHTS ["/" [AMODE ":"] INPUTS]

    WEIGHTS, INPUTS :=  "4"            every layer 4 bits
                     |  "8-4-2-1"      one value per *stage* in forward order, the last
                                       value held for the remaining stages
                     |  "8,6,4,2,2,1"  exactly one value per layer
    WMODE           :=  a registered weight mode: "dorefa" (default), "symmetric", ...
    AMODE           :=  a registered input mode: "dorefa" (default), ...

Each value is an integer in 1..8, or 32 for full precision. Without the
``/INPUTS`` part, layer inputs stay at full precision. Examples: ``"8-4-2-1"``,
``"4/4"`` (W4A4), ``"32-1/8"``, ``"symmetric:2"`` (TWN ternary).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .registry import check_bits

_TOKEN = re.compile(r"^\d+$")
#: the mode a part without ``MODE:`` uses
DEFAULT_MODE = "dorefa"


def split_mode(part: str, registry: Mapping, text: str, what: str) -> tuple[str, str]:
    """``"symmetric:2"`` -> ``("symmetric", "2")``; a part without a mode gets ``DEFAULT_MODE``.

    Example:
        >>> split_mode("symmetric:2-1", {"symmetric": None}, "symmetric:2-1", "weight")
        ('symmetric', '2-1')
    """
    part = part.strip()
    if ":" not in part:
        return DEFAULT_MODE, part
    mode, body = (p.strip() for p in part.split(":", 1))
    if mode not in registry:
        raise ValueError(f"unknown {what} mode {mode!r} in {text!r}; allowed: {tuple(registry)}")
    return mode, body


def expand(part: str, names: list[str], groups: list[int] | None, text: str, what: str) -> list[int]:
    """Values of a dash form per stage (or layer), of a comma form per layer, as one value per layer.

    Example:
        >>> expand("8-4", ["a", "b", "c"], [0, 1, 1], "8-4", "weight")
        [8, 4, 4]
    """
    part = part.strip()
    if not part:
        raise ValueError(f"cannot parse schedule {text!r}: the {what} bits are empty")
    has_dash, has_comma = "-" in part, "," in part
    if has_dash and has_comma:
        raise ValueError(f"cannot parse {part!r} in {text!r}: use either '-' (last value held) or ',' (one value per "
                         "layer), not both")
    tokens = [t.strip() for t in part.split("," if has_comma else "-")]
    values = []
    for tok in tokens:
        if not _TOKEN.match(tok):
            raise ValueError(f"cannot parse {what} bit-width token {tok!r} in {text!r}: expected an integer in 1..8 or 32")
        values.append(check_bits(int(tok), f"{what} bit-width {tok!r} in {text!r}"))
    n = len(names)
    if has_comma:
        if len(values) != n:
            raise ValueError(f"{text!r} gives {len(values)} comma-separated {what} values for {n} layers; give "
                             f"exactly {n} or use '-'")
        return values
    stage_of = list(range(n)) if groups is None else renumber(groups)
    n_units, unit = max(stage_of) + 1, ("stages" if groups is not None else "layers")
    if len(values) > n_units:
        raise ValueError(f"{text!r} gives {len(values)} {what} values for only {n_units} {unit}"
                         + (f" ({n} layers; a comma-separated list gives one value per layer)" if groups else ""))
    values = values + [values[-1]] * (n_units - len(values))
    return [values[s] for s in stage_of]


def renumber(groups: Sequence[int]) -> list[int]:
    """Stage indices 0, 1, 2... in order of first appearance.

    Example:
        >>> renumber([5, 5, 2, 7])
        [0, 0, 1, 2]
    """
    ids: dict = {}
    return [ids.setdefault(g, len(ids)) for g in groups]


def compress(values: list[int], groups: Sequence[int] | None = None) -> str:
    """Shortest dash form (per stage when ``groups`` is given): drop the tail that repeats the last kept value.

    A stage whose layers differ gets the comma form, one value per layer.

    Example:
        >>> compress([8, 4, 2, 1, 1]), compress([8, 4, 4], [0, 1, 1]), compress([8, 4, 2], [0, 1, 1])
        ('8-4-2-1', '8-4', '8,4,2')
    """
    if groups is not None:
        stage_of, per_stage = renumber(groups), {}
        for s, v in zip(stage_of, values):
            per_stage.setdefault(s, set()).add(v)
        if any(len(v) > 1 for v in per_stage.values()):
            return ",".join(str(v) for v in values)
        values = [next(iter(per_stage[s])) for s in range(len(per_stage))]
    k = len(values)
    while k > 1 and values[k - 1] == values[k - 2]:
        k -= 1
    return "-".join(str(v) for v in values[:k])
