"""One vocabulary for named schedules: what an entry means, its label in words, its shape.

Everything that names schedules (``compare``, the CLI, the demo, the report,
the BitAllocator's preset menu, figure legends) resolves entries and labels
here. Entries:

``"float"``
    every weight and input at 32 bits (label ``float-32``).
``"halving"``
    8 bits for the first stage, halved at each following stage down to 1:
    the thesis's 8-4-2-1 network (label ``8-4-2-1``).
``"linear"``
    8 down to 1 by rounded linear steps over the layers (``linear 8→1``).
``"increasing"``
    the mirror image of ``halving``, the control experiment (``increasing 1→8``).
a one-line string
    ``"2"``, ``"8-4-2-1"``, ``"4/4"``, ``"symmetric:2"``... (``BitSchedule.from_string``).

Labels name uniform schedules in words (``uniform 2-bit``, ``ternary``,
``uniform 4-bit, 4-bit inputs``) and others by their bits (``8-4-2-1``). A
schedule's *shape* is the profile of its weight bits over depth (``SHAPES``);
it is not a module's kind (``WeightKind``). Entries that need data
(``"alloc:..."``) are resolved by ``pdbviz.experiment``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from .._checks import warn_renamed
from .quantizers import FULL_PRECISION, WEIGHT_QUANTIZERS
from .schedule import BitSchedule, input_bits_allowed

#: the shapes of a schedule's weight bits over depth (``allocated``: chosen by a metric under a budget)
SHAPES = ("float", "uniform", "decreasing", "increasing", "allocated", "custom")


def _renamed(old: str, new: str) -> None:
    warn_renamed(old, new, "a schedule's shape, not a module's kind", stacklevel=4)


@dataclass(frozen=True)
class Preset:
    """A named schedule: its label, its shape (one of ``SHAPES``), and how to build it for a model."""

    label: str
    shape: str
    build: Callable[[nn.Module], BitSchedule] | None
    description: str

    @property
    def kind(self) -> str:
        """Deprecated name of ``shape``."""
        _renamed("Preset.kind", "Preset.shape")
        return self.shape


PRESETS: dict[str, Preset] = {
    "float": Preset("float-32", "float", None, "every weight and input at 32 bits"),
    "halving": Preset("8-4-2-1", "decreasing", lambda m: BitSchedule.decreasing(m, 8, 1),
                      "8 bits for the first stage, halved at each following stage down to 1"),
    "linear": Preset("linear 8→1", "decreasing", lambda m: BitSchedule.decreasing(m, 8, 1, ramp="linear"),
                     "8 down to 1 bit by rounded linear steps over the layers"),
    "increasing": Preset("increasing 1→8", "increasing", lambda m: BitSchedule.increasing(m, 1, 8),
                         "the mirror image of 8-4-2-1: the control experiment"),
}


@dataclass(frozen=True)
class NamedSchedule:
    """An entry resolved for a model: ``entry`` as given, ``label`` in words, its ``shape`` (one of
    ``SHAPES``), and the schedule (None for float)."""

    entry: str
    label: str
    shape: str
    schedule: BitSchedule | None

    @property
    def kind(self) -> str:
        """Deprecated name of ``shape``."""
        _renamed("NamedSchedule.kind", "NamedSchedule.shape")
        return self.shape


def schedule_shape(schedule: BitSchedule | None) -> str:
    """``float``, ``uniform``, ``decreasing``, ``increasing`` or ``custom``, from the weight bits.

    Example:
        >>> schedule_shape(BitSchedule.from_list(["a", "b", "c"], [8, 4, 4]))
        'decreasing'
    """
    if schedule is None or all(s.is_float for s in schedule.values()):
        return "float"
    w = schedule.w_bits
    if len(set(w)) == 1:
        return "uniform"
    if all(a >= b for a, b in zip(w, w[1:])):
        return "decreasing"
    if all(a <= b for a, b in zip(w, w[1:])):
        return "increasing"
    return "custom"


def schedule_label(schedule: BitSchedule | None, model: nn.Module | None = None, text: str | None = None) -> str:
    """Words for a schedule: ``uniform 2-bit``, ``ternary``, ``uniform 4-bit, 4-bit inputs``, or its bits.

    ``text`` (the string as the user wrote it) names non-uniform schedules;
    otherwise their one-line form does.

    Example:
        >>> schedule_label(BitSchedule.uniform(["a", "b"], 2))
        'uniform 2-bit'
        >>> schedule_label(BitSchedule.uniform(["a", "b"], 2, weight_mode="symmetric"))
        'ternary'
    """
    if schedule_shape(schedule) == "float":
        return PRESETS["float"].label
    specs = list(schedule.values())
    modes = {s.weight_mode for s in specs}
    w = schedule.w_bits
    allowed = input_bits_allowed(model) if model is not None else {}
    a = [s.a_bits for n, s in schedule.items() if allowed.get(n, True)]
    if len(set(w)) == 1 and len(modes) == 1:
        mode, k = modes.pop(), w[0]
        if mode == "symmetric" and k == 2:
            words = "ternary"
        elif mode == "dorefa":
            words = f"uniform {k}-bit"
        else:
            words = f"{WEIGHT_QUANTIZERS[mode].label} {k}-bit"
        if any(b != FULL_PRECISION for b in a):
            words += f", {a[0]}-bit inputs" if len(set(a)) == 1 else f", inputs {'-'.join(map(str, a))}"
        return words
    if text is not None:
        return text
    return schedule.to_string(model)


def resolve_preset(entry, model: nn.Module) -> NamedSchedule:
    """Resolve a preset name, a one-line string or a ``BitSchedule`` for ``model``.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> named = resolve_preset("increasing", net)
        >>> named.label, named.shape, named.schedule.w_bits
        ('increasing 1→8', 'increasing', [2, 4, 8])
    """
    if isinstance(entry, BitSchedule):
        return NamedSchedule(entry.to_string(model), schedule_label(entry, model), schedule_shape(entry), entry)
    if not isinstance(entry, str):
        raise TypeError(f"each schedule must be a string or a BitSchedule, got {type(entry).__name__}")
    text = entry.strip()
    preset = PRESETS.get(text)
    if preset is not None:
        schedule = preset.build(model) if preset.build is not None else None
        return NamedSchedule(text, preset.label, preset.shape, schedule)
    schedule = BitSchedule.from_string(text, model)
    return NamedSchedule(text, schedule_label(schedule, model, text), schedule_shape(schedule), schedule)


def schedule_kind(schedule: BitSchedule | None) -> str:
    """Deprecated name of ``schedule_shape``."""
    _renamed("schedule_kind", "schedule_shape")
    return schedule_shape(schedule)


def __getattr__(name: str):
    if name == "KINDS":
        _renamed("KINDS", "SHAPES")
        return SHAPES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
