"""Per-layer memory of a (quantized) model, after larq's ``models.summary``."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
from torch import nn

from .convert import check_schedule, layer_specs
from .schedule import BitSchedule

MEMORY_COLUMNS = ["layer", "kind", "params", "w_bits", "a_bits", "weight_bits", "weight_kib"]


@dataclass(frozen=True)
class MemorySummary:
    """Totals of a memory table.

    Attributes:
        quantized_weight_kib: weights of the quantizable layers at their bit-widths.
        float32_weight_kib: the same weights at 32 bits.
        compression: ``float32_weight_kib / quantized_weight_kib``.
        avg_bits: parameter-weighted average weight bits.
        weight_params: number of weights in quantizable layers.
        other_params: everything else kept in float (biases, BatchNorm, other
            layers' parameters and buffers), counted at its own dtype size.
        other_kib: memory of ``other_params``.
        total_kib: ``quantized_weight_kib + other_kib``, what a packed file stores.
    """

    quantized_weight_kib: float
    float32_weight_kib: float
    compression: float
    avg_bits: float
    weight_params: int
    other_params: int
    other_kib: float
    total_kib: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MemoryReport:
    """A memory table and its totals, as larq's ``summary`` prints them.

    Attributes:
        table: one row per quantizable layer (see ``memory_table``).
        summary: the totals (a ``MemorySummary``).

    ``print(report)`` or ``report.print(print_fn=...)`` shows both; in
    Jupyter the report renders as an HTML table with the totals under it.
    """

    table: pd.DataFrame
    summary: MemorySummary

    def lines(self) -> list[str]:
        """The report as lines of text: the table, then the totals."""
        s = self.summary
        return [*self.table.to_string(index=False).splitlines(), "",
                f"quantized weights {s.quantized_weight_kib:,.2f} KiB  (float-32 {s.float32_weight_kib:,.2f} KiB, "
                f"{s.compression:.1f}x smaller, {s.avg_bits:.2f} average bits)",
                f"other float parameters and buffers {s.other_kib:,.2f} KiB; total {s.total_kib:,.2f} KiB"]

    def print(self, print_fn=print) -> None:
        """Print the report line by line through ``print_fn`` (``print`` by default, or ``logging.info``...)."""
        for line in self.lines():
            print_fn(line)

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        import html

        totals = "<br>".join(html.escape(line) for line in self.lines()[-2:])
        return self.table.to_html(index=False, float_format=lambda v: f"{v:.2f}", border=0) + f"<p>{totals}</p>"


def memory_report(model: nn.Module, schedule: BitSchedule | None = None) -> MemoryReport:
    """The memory table of ``model`` with its totals, as one typed result.

    Table columns: ``layer``, ``kind`` (Conv2d / Linear), ``params`` (weights only),
    ``w_bits``, ``a_bits``, ``weight_bits`` (``params * w_bits``) and
    ``weight_kib``. Biases, BatchNorm and all other parameters and buffers are
    counted apart as float in the summary (a ``MemorySummary``).

    ``schedule`` (optional) computes the table for a float ``model`` as if it
    were quantized with it, without building the quantized model (cheap enough
    for a slider).

    Example:
        >>> net = nn.Sequential(nn.Linear(100, 10))
        >>> report = memory_report(net, BitSchedule.uniform(net, 2))
        >>> int(report.table.weight_bits.sum()), report.summary.compression
        (2000, 16.0)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    specs = layer_specs(model)
    if schedule is not None:
        check_schedule(model, schedule)
        specs.update(schedule)
    modules = dict(model.named_modules())
    rows, weight_ids = [], set()
    for name, spec in specs.items():
        m = modules[name]
        n = m.weight.numel()
        weight_ids.add(id(m.weight))
        kind = "Conv2d" if isinstance(m, nn.Conv2d) else "Linear"
        rows.append((name, kind, n, spec.w_bits, spec.a_bits, n * spec.w_bits, n * spec.w_bits / 8 / 1024))
    table = pd.DataFrame(rows, columns=MEMORY_COLUMNS)
    other_params, other_bits = 0, 0
    seen = set(weight_ids)
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) in seen:
            continue
        seen.add(id(t))
        other_params += t.numel()
        other_bits += t.numel() * t.element_size() * 8
    weight_params = int(table.params.sum())
    qbits = int(table.weight_bits.sum())
    q_kib = qbits / 8 / 1024
    f_kib = weight_params * 32 / 8 / 1024
    summary = MemorySummary(
        quantized_weight_kib=q_kib,
        float32_weight_kib=f_kib,
        compression=f_kib / q_kib if q_kib else float("nan"),
        avg_bits=qbits / weight_params if weight_params else float("nan"),
        weight_params=weight_params,
        other_params=other_params,
        other_kib=other_bits / 8 / 1024,
        total_kib=q_kib + other_bits / 8 / 1024,
    )
    return MemoryReport(table, summary)


def memory_table(model: nn.Module, schedule: BitSchedule | None = None) -> pd.DataFrame:
    """One row per quantizable layer: ``memory_report(model, schedule).table``.

    Example:
        >>> net = nn.Sequential(nn.Linear(100, 10))
        >>> memory_table(net, BitSchedule.uniform(net, 2)).weight_kib.tolist()
        [0.244140625]
    """
    return memory_report(model, schedule).table


def memory_summary(model: nn.Module, schedule: BitSchedule | None = None) -> MemorySummary:
    """The totals of ``memory_report(model, schedule)``."""
    return memory_report(model, schedule).summary
