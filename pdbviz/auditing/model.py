"""``audit``: run a model under the dispatch-level recorder and compare what it computed with to its report."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ..quant.convert import layer_specs
from ..quant.discovery import ModelLayout, discover, stored_tensors
from ..quant.forward_trace import call_with
from ..quant.layers import weight_quant
from ..quant.quantizers import FULL_PRECISION, weight_quantizer
from .recorder import WEIGHT_OPS, Recorder

#: the columns of an audit table
AUDIT_COLUMNS = ["weight", "mode", "op", "calls", "values", "allowed", "w_bits", "weight_mode", "a_bits",
                 "input_values", "reported", "verdict"]
#: the verdicts a row can have
VERDICTS = ("ok", "LIE", "LIE (input)", "unreported use", "untraced operand")


@dataclass(frozen=True)
class AuditReport:
    """What each weight's data met in the computation, against what the memory report says.

    Attributes:
        table: one row per (weight, mode, op) where the weight's data met other
            data: ``values`` is its largest number of distinct values there,
            ``allowed`` what its reported bits allow (``2^k`` for most modes,
            none at 32 bits), ``input_values`` the distinct values of the data
            it met (counted where its input is reported quantized), ``verdict``
            one of ``VERDICTS``. Rows of untraced operands name the op, with
            ``weight`` ``"?"``.
        weights: the number of quantizable weights in the report.
        unused: weights the report lists that met no data in either pass.
    """

    table: pd.DataFrame
    weights: int
    unused: tuple[str, ...] = ()

    def _count(self, verdict: str) -> int:
        return int((self.table.verdict == verdict).sum()) if len(self.table) else 0

    @property
    def uses(self) -> int:
        """Rows of weights (every op where a weight met data, per mode)."""
        return int((self.table.weight != "?").sum()) if len(self.table) else 0

    @property
    def lies(self) -> int:
        """Uses with more distinct values than the reported bits allow (weights or their inputs)."""
        return self._count("LIE") + self._count("LIE (input)")

    @property
    def unreported(self) -> int:
        """Uses of parameters that the memory report does not list."""
        return self._count("unreported use")

    @property
    def untraced(self) -> int:
        """Operands of weight-consuming ops that are neither a model tensor, nor computed in the pass, nor input."""
        return self._count("untraced operand")

    @property
    def ok(self) -> bool:
        """True when every use agrees with the report."""
        return self.lies == self.unreported == self.untraced == 0

    @property
    def summary(self) -> str:
        """One line: ``"N weights, M uses, 0 lies"`` (unreported uses and untraced operands when there are any)."""
        line = f"{self.weights} weights, {self.uses} uses, {self.lies} {'lie' if self.lies == 1 else 'lies'}"
        if self.unreported:
            line += f", {self.unreported} unreported uses"
        if self.untraced:
            line += f", {self.untraced} untraced operands"
        return line

    def lines(self) -> list[str]:
        """The table, then the summary, as lines of text."""
        shown = self.table.drop(columns=["reported"]) if len(self.table) else self.table
        return [*shown.to_string(index=False).splitlines(), "", self.summary]

    def print(self, print_fn=print) -> None:
        """Print the report line by line through ``print_fn``."""
        for line in self.lines():
            print_fn(line)

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        import html

        return self.table.to_html(index=False, border=0) + f"<p>{html.escape(self.summary)}</p>"


def _layout(model: nn.Module, example_input) -> ModelLayout:
    cached = model.__dict__.get("_pdbviz_layout")
    if cached is not None and cached[1].traced == "forward":
        layout = discover(model)  # the cached layout while the model's weights keep their shapes and kinds
        if layout.traced == "forward":
            return layout
    return discover(model, example_input)


def _sources(model: nn.Module, layout: ModelLayout):
    """Source id -> (name, tensors); the entry index of each weight source; names the report lists."""
    modules = dict(model.named_modules())
    sources, names, covered = {}, {}, set()
    for i, entry in enumerate(layout.entries):
        tensors = []
        for path, pname in entry.owners:
            tensors.extend(stored_tensors(modules[path], pname) or ())
            wq = weight_quant(modules[path], pname)
            if wq is not None:
                tensors.extend(wq.held_values())
        sources[i] = tuple({id(t): t for t in tensors}.values())
        names[i] = entry.name
        covered.update(id(t) for t in sources[i])
    floats = {f.name: f for f in layout.floats}
    extra = {}
    for name, t in [*model.named_parameters(remove_duplicate=True), *model.named_buffers(remove_duplicate=True)]:
        if id(t) in covered or not t.is_floating_point() or id(t) in extra:
            continue
        extra[id(t)] = (name, t)
    for k, (name, t) in enumerate(extra.values(), start=len(sources)):
        sources[k] = (t,)
        names[k] = name
    return sources, names, floats


def _display(name: str) -> str:
    parts = name.split(".")
    if "parametrizations" in parts:
        i = parts.index("parametrizations")
        return ".".join(parts[:i] + parts[i + 1:i + 2])
    return name


def _run(model: nn.Module, example_input, sources, count_inputs, modes):
    """Run one forward pass per mode under a recorder; restore the model's mode, buffers and the RNG."""
    results = {}
    was_training = model.training
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        with torch.random.fork_rng(devices=[]):
            for mode in modes:
                model.train(mode == "train")
                recorder = Recorder(sources, count_inputs)
                recorder.mark_seen(example_input)
                grad = torch.enable_grad() if mode == "train" else torch.no_grad()
                with grad, recorder:
                    call_with(model, example_input)
                results[mode] = recorder
    finally:
        model.train(was_training)
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    return results


def audit(model: nn.Module, example_input, modes: tuple[str, ...] = ("train", "eval")) -> AuditReport:
    """Run ``model`` on ``example_input`` and report what each weight really computed with.

    One forward pass per mode (train with autograd, eval under ``no_grad``)
    runs under a dispatch-level recorder (``pdbviz.auditing.recorder``
    explains how an operand is traced to its weight). For every op where a
    weight's data met other data, the distinct values of the weight's operand
    there are counted and compared with the bits and mode of the model's
    memory report: more values than those bits allow is a LIE. The model's
    mode, buffers (BatchNorm statistics) and the random number generator are
    restored afterwards.

    Args:
        model: any ``nn.Module``, quantized by pdbviz or not.
        example_input: one batch (a tensor, a tuple of positional arguments or a dict of keyword arguments).
        modes: which passes to run, ``"train"`` and/or ``"eval"``.

    Example:
        >>> import pdbviz
        >>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
        >>> report = audit(pdbviz.quantize(net, "2-1/4"), torch.randn(5, 8))
        >>> report.summary
        '2 weights, 4 uses, 0 lies'
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(modes, str) or not modes or any(m not in ("train", "eval") for m in modes):
        raise ValueError(f"modes must be a non-empty tuple of 'train' and/or 'eval', got {modes!r}")
    layout = _layout(model, example_input)
    specs = layer_specs(model, layout.names)
    sources, names, floats = _sources(model, layout)
    count_inputs = {i for i, e in enumerate(layout.entries) if specs[e.name].a_bits != FULL_PRECISION}
    results = _run(model, example_input, sources, count_inputs, modes)
    rows, met = [], set()
    for mode, recorder in results.items():
        for (sid, op), use in recorder.uses.items():
            met.add(sid)
            if sid < 0:
                rows.append(("?", mode, op, use.calls, use.values, None, None, "", None, use.input_values,
                             f"a tensor of shape {recorder.untraced[sid]} from outside the pass", "untraced operand"))
                continue
            row = _row(sid, op, use, mode, layout, specs, names, floats, sources)
            if row is not None:
                rows.append(row)
    table = pd.DataFrame(rows, columns=AUDIT_COLUMNS)
    for column in ("allowed", "w_bits", "a_bits"):
        table[column] = table[column].astype("Int64")
    unused = tuple(e.name for i, e in enumerate(layout.entries) if i not in met)
    return AuditReport(table, len(layout), unused)


def _row(sid, op, use, mode, layout, specs, names, floats, sources):
    if sid < len(layout):
        entry = layout.entries[sid]
        spec = specs[entry.name]
        if spec.w_bits == FULL_PRECISION:
            allowed, reported = None, "32 bits (float)"
        else:
            allowed = weight_quantizer(spec.weight_mode).levels(spec.w_bits)
            reported = f"{spec.weight_mode} {spec.w_bits} bits"
        verdict = "LIE" if allowed is not None and use.values > allowed else "ok"
        if verdict == "ok" and spec.a_bits != FULL_PRECISION and op in WEIGHT_OPS \
                and use.input_values > 2**spec.a_bits:
            verdict = "LIE (input)"
        return (entry.name, mode, op, use.calls, use.values, allowed, spec.w_bits, spec.weight_mode, spec.a_bits,
                use.input_values, reported, verdict)
    name = _display(names[sid])
    tensor = sources[sid][0]
    if not isinstance(tensor, nn.Parameter) or tensor.dim() < 2:
        return None  # biases, norms, buffers: float, and reported as such
    listed = floats.get(name)
    verdict = "ok" if listed is not None else "unreported use"
    reported = f"float: {listed.reason}" if listed is not None else "not in the memory report"
    return (name, mode, op, use.calls, use.values, None, FULL_PRECISION, "", FULL_PRECISION, use.input_values,
            reported, verdict)


def audit_packed(path: str | os.PathLike, model: nn.Module, example_input) -> AuditReport:
    """``audit`` of the model that ``load_packed(path, model)`` rebuilds: what a packed file computes with.

    Example::

        audit_packed("model.pdbq", build_model("lenet", (1, 28, 28), 10), torch.randn(4, 1, 28, 28))
    """
    from ..quant.packing import load_packed

    return audit(load_packed(path, model), example_input)
