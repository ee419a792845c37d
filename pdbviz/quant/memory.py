"""Per-weight memory and bit operations of a (quantized) model, after larq's ``models.summary``.

Every parameter and buffer of the model is accounted for: quantized weights at
their bit-widths, everything else (biases, norms, weights left at 32 bits,
parameters of kinds pdbviz does not quantize, buffers) at its own dtype's
size. The coverage line says what share of the parameters is quantized and
what was left float.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd
from torch import nn

from .convert import effective_schedule, layer_specs
from .discovery import FloatTensor, discover
from .packing import FRAMING_BYTES, packed_size
from .quantizers import FULL_PRECISION
from .schedule import BitSchedule

MEMORY_COLUMNS = ["layer", "kind", "params", "w_bits", "a_bits", "weight_bits", "weight_kib", "macs", "bops",
                  "input"]


@dataclass(frozen=True)
class MemorySummary:
    """Totals of a memory report.

    Attributes:
        quantized_weight_kib: the quantizable weights at their bit-widths.
        float32_weight_kib: the same weights at 32 bits.
        compression: ``float32_weight_kib / quantized_weight_kib``.
        avg_bits: parameter-weighted average bits of those weights.
        weight_params: number of values in quantizable weights.
        other_params: values of every other parameter and buffer.
        other_kib: their memory at their own dtypes.
        total_kib: the size of the packed file (``save_packed``): exactly, header and
            checksum included, for a model as quantized (``file_bytes``); for a
            schedule applied hypothetically, its payload (each quantized weight's
            codes rounded up to whole bytes) plus the fixed framing, without the
            header (a few hundred bytes, compressed JSON).
        float32_total_kib: the float model: its weights (as stored: a weight_norm
            weight as its two tensors) at 32 bits, everything else at its dtype.
        compression_total: ``float32_total_kib / total_kib``, end to end.
        avg_bits_total: average bits per stored value, end to end.
        coverage: share of the model's parameters that are quantized (below 32 bits).
        macs: multiply-accumulates per sample of the quantizable weights (NaN when unknown).
        bops: bit operations per sample, ``sum(MACs * w_bits * a_bits)`` (NaN when unknown).
        float32_bops: the same at 32 x 32 bits.
        left_float: every tensor stored as float, with the reason.
        file_bytes: the exact size of ``save_packed``'s file, or None for a hypothetical schedule.
    """

    quantized_weight_kib: float
    float32_weight_kib: float
    compression: float
    avg_bits: float
    weight_params: int
    other_params: int
    other_kib: float
    total_kib: float
    float32_total_kib: float
    compression_total: float
    avg_bits_total: float
    coverage: float
    macs: float
    bops: float
    float32_bops: float
    left_float: tuple[FloatTensor, ...] = ()
    file_bytes: int | None = None

    def to_dict(self) -> dict:
        """The summary as a JSON-ready dict."""
        d = asdict(self)
        d["left_float"] = [asdict(f) for f in self.left_float]
        return d

    def coverage_line(self) -> str:
        """One line: the share of parameters quantized, and what was left float grouped by reason.

        Example: ``97.3% of parameters quantized; left float: 48 biases (38,400 values), ...``
        """
        groups: dict[str, list[FloatTensor]] = {}
        for f in self.left_float:
            if f.reason != "buffer":
                groups.setdefault(f.reason, []).append(f)
        parts = []
        for reason, tensors in groups.items():
            n = sum(f.numel for f in tensors)
            if reason in _PLURALS:
                parts.append(f"{len(tensors)} {_PLURALS[reason]} ({n:,} values)")
            else:
                names = ", ".join(f.name for f in tensors[:4]) + (f" and {len(tensors) - 4} more"
                                                                    if len(tensors) > 4 else "")
                parts.append(f"{names} ({reason}; {n:,} values)")
        head = f"{100 * self.coverage:.1f}% of parameters quantized"
        return head + ("; left float: " + ", ".join(parts) if parts else "")


_PLURALS = {"bias": "biases", "normalisation": "normalisation parameters",
            "at 32 bits in the schedule": "weights at 32 bits", "quantizer state": "quantizer scales"}


@dataclass(frozen=True)
class MemoryReport:
    """A memory table and its totals, as larq's ``summary`` prints them.

    Attributes:
        table: one row per quantizable weight (see ``memory_report``).
        summary: the totals (a ``MemorySummary``).

    ``print(report)`` or ``report.print(print_fn=...)`` shows both; in
    Jupyter the report renders as an HTML table with the totals under it.
    """

    table: pd.DataFrame
    summary: MemorySummary

    def totals(self) -> list[str]:
        """The totals as lines of text."""
        s = self.summary
        lines = [f"quantized weights {s.quantized_weight_kib:,.2f} KiB (float-32 {s.float32_weight_kib:,.2f} KiB): "
                 f"{s.compression:.1f}x smaller, {s.avg_bits:.2f} average bits",
                 f"whole model {s.total_kib:,.2f} KiB (float-32 {s.float32_total_kib:,.2f} KiB): "
                 f"{s.compression_total:.1f}x smaller end to end, {s.avg_bits_total:.2f} average bits",
                 s.coverage_line()]
        if math.isfinite(s.bops):
            lines.append(f"{s.macs:,.0f} MACs and {s.bops:,.0f} bit operations per sample "
                         f"({s.float32_bops / s.bops if s.bops else math.inf:.1f}x fewer than at 32 x 32 bits)")
        return lines

    def lines(self) -> list[str]:
        """The report as lines of text: the table, then the totals."""
        return [*self.table.to_string(index=False).splitlines(), "", *self.totals()]

    def print(self, print_fn=print) -> None:
        """Print the report line by line through ``print_fn`` (``print`` by default, or ``logging.info``...)."""
        for line in self.lines():
            print_fn(line)

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        import html

        totals = "<br>".join(html.escape(line) for line in self.totals())
        return self.table.to_html(index=False, float_format=lambda v: f"{v:,.2f}", border=0) + f"<p>{totals}</p>"


def memory_report(model: nn.Module, schedule: BitSchedule | str | None = None, example_input=None) -> MemoryReport:
    """The memory and bit operations of ``model`` (as quantized, or as ``schedule`` would quantize it).

    Table columns: ``layer`` (the weight's name), ``kind``, ``params``,
    ``w_bits``, ``a_bits`` (of its input; 32 where the input stays float),
    ``weight_bits`` (``params * w_bits``), ``weight_kib``, ``macs`` (per
    sample, from the example forward pass; NaN when unknown), ``bops``
    (``macs * w_bits * a_bits``) and ``input`` (how its input is treated).
    The summary accounts for every other parameter and buffer too.

    ``schedule`` (optional) computes the report for a float ``model`` as if it
    were quantized with it, without building the quantized model (cheap
    enough for a slider).

    Example:
        >>> net = nn.Sequential(nn.Linear(100, 10))
        >>> report = memory_report(net, BitSchedule.uniform(net, 2))
        >>> int(report.table.weight_bits.sum()), report.summary.compression
        (2000, 16.0)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    layout = discover(model, example_input)
    specs = layer_specs(model, layout.names)
    if schedule is not None:
        specs.update(effective_schedule(model, schedule, layout, warn=False))
    rows, floats = [], []
    for i, entry in enumerate(layout.entries):
        spec = specs[entry.name]
        n, wb = entry.numel, spec.w_bits
        ab = spec.a_bits
        if ab != FULL_PRECISION:
            note = "quantized"
        elif i == 0 and entry.input_quantizable:
            note = "float: the network's input"
        elif not entry.input_quantizable:
            note = "float: " + entry.input_note
        else:
            note = "float"
        rows.append((entry.name, entry.kind, n, wb, ab, n * wb, n * wb / 8192, entry.macs, entry.macs * wb * ab, note))
        if wb == FULL_PRECISION:
            floats.append(FloatTensor(entry.name, n, 32, "at 32 bits in the schedule"))
    table = pd.DataFrame(rows, columns=MEMORY_COLUMNS)
    floats.extend(layout.floats)
    other_bits = sum(f.numel * f.element_bits for f in layout.floats)
    other_params = sum(f.numel for f in layout.floats)
    weight_params = int(table.params.sum())
    qbits = int(table.weight_bits.sum())
    q_kib, f_kib, other_kib = qbits / 8192, weight_params * 32 / 8192, other_bits / 8192
    stored = {e.name: e.stored for e in layout.entries}  # a weight_norm weight is stored as g and v
    all_params = sum(stored.values()) + sum(f.numel for f in layout.floats if f.reason != "buffer")
    quantized = sum(stored[n] for n, b in zip(table.layer, table.w_bits) if b != FULL_PRECISION)
    macs = float(table.macs.sum(skipna=False)) if len(table) else 0.0
    file_bytes = None
    if schedule is None:
        try:
            file_bytes = packed_size(model)
        except TypeError:  # a tensor of a dtype the packed format does not store: the estimate below
            file_bytes = None
    if file_bytes is not None:
        total_kib = file_bytes / 1024
    else:
        payload = sum(math.ceil(e.numel * specs[e.name].w_bits / 8) if specs[e.name].w_bits != FULL_PRECISION
                      else e.stored * 4 for e in layout.entries) + other_bits // 8
        total_kib = (payload + FRAMING_BYTES) / 1024
    summary = MemorySummary(
        quantized_weight_kib=q_kib, float32_weight_kib=f_kib,
        compression=f_kib / q_kib if q_kib else math.nan,
        avg_bits=qbits / weight_params if weight_params else math.nan,
        weight_params=weight_params, other_params=other_params, other_kib=other_kib, total_kib=total_kib,
        float32_total_kib=sum(stored.values()) * 32 / 8192 + other_kib,
        compression_total=(sum(stored.values()) * 32 / 8192 + other_kib) / total_kib if total_kib else math.nan,
        avg_bits_total=(qbits + other_bits) / (weight_params + other_params) if weight_params + other_params
        else math.nan,
        coverage=quantized / all_params if all_params else 0.0,
        macs=macs, bops=float(table.bops.sum(skipna=False)) if len(table) else 0.0, float32_bops=macs * 32 * 32,
        left_float=tuple(floats), file_bytes=file_bytes,
    )
    return MemoryReport(table, summary)


def memory_table(model: nn.Module, schedule: BitSchedule | str | None = None, example_input=None) -> pd.DataFrame:
    """One row per quantizable weight: ``memory_report(model, schedule).table``.

    Example:
        >>> net = nn.Sequential(nn.Linear(100, 10))
        >>> memory_table(net, BitSchedule.uniform(net, 2)).weight_kib.tolist()
        [0.244140625]
    """
    return memory_report(model, schedule, example_input).table


def memory_summary(model: nn.Module, schedule: BitSchedule | str | None = None, example_input=None
                   ) -> MemorySummary:
    """The totals of ``memory_report(model, schedule)``."""
    return memory_report(model, schedule, example_input).summary
