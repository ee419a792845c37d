"""Write a quantized model as QONNX (``Quant`` / ``BipolarQuant`` nodes) or as ONNX with integer weights (QDQ).

Both start from the same float graph (``_trace``), where each weight pdbviz
quantizes is one initializer, and put the weight's integer form (``grid``) in
its place, so every use of the weight follows (a ``Conv`` of any ``groups``,
a ``ConvTranspose``, a ``Gemm`` or a ``MatMul`` on input of any rank, an
embedding's ``Gather``, the slices an attention or an ``LSTM`` takes of it).
The data each quantized weight multiplies gets its input quantizer:

- **ONNX QDQ**: the codes stored as int4 (grids within [-8, 7]) or int8,
  ``Clip`` to the codes' range where the bit-width is below the storage, then
  ``DequantizeLinear``; DoReFa's grid, without a zero, adds half a step after
  it. Inputs: ``QuantizeLinear`` to uint8, ``Clip`` below 8 bits,
  ``DequantizeLinear``. Batch and sequence axes are dynamic.
- **QONNX**: a grid with a zero (symmetric, LSQ) becomes
  ``Quant(w, scale, 0, bits)``, typed ``SCALEDINT<bits>`` by qonnx. DoReFa's
  k-bit weight, whose levels ``(c + 1/2) scale`` have no zero, is the sum of
  k binary planes, ``scale/2 * sum_j 2^j b_j`` with ``b_j`` in {-1, +1} (a
  1-bit weight is one plane, ``scale * b``): the planes, stacked and stored
  as int8 signs, feed one ``BipolarQuant`` and one copy of the layer with k
  times its outputs, which are scaled and summed (``_planes``). No stored
  weight is zero unless its value is, so qonnx's ``inference_cost`` with its
  default options counts the schedule's bits. Where a weight does not enter
  its layer linearly (the fused ``LSTM``/``GRU`` ops) it is written exactly
  as ``Quant(w, scale, -1/2, k)`` or ``BipolarQuant(w, scale)``, which qonnx
  types as float. Inputs: ``Quant(x, scale, 0, k, signed=0)``. Shapes are
  static with a batch of 1 (FINN's convention; qonnx's executor runs one
  sample at a time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from .._io import atomic_write
from ..quant.convert import schedule_of
from . import _graph, _planes, _trace
from .grid import ExportError, IntegerGrid, require

QONNX_DOMAIN = "qonnx.custom_op.general"


@dataclass(frozen=True)
class LayerExport:
    """How one weight was written: its bit-widths and the form it took in the file."""

    name: str
    w_bits: int
    a_bits: int
    weight: str
    input: str


@dataclass(frozen=True)
class ExportResult:
    """What ``to_qonnx`` / ``to_onnx`` wrote.

    Attributes:
        path: the file.
        format: ``"qonnx"`` or ``"onnx"``.
        nbytes: its size on disk.
        layers: one ``LayerExport`` per quantized weight, in forward order.
        dynamic_axes: the input's axes left free in the file (``"batch"``, ``"sequence"``).
    """

    path: Path
    format: str
    nbytes: int
    layers: tuple[LayerExport, ...]
    dynamic_axes: tuple[str, ...] = ()


def _describe(grid: IntegerGrid) -> str:
    form = "bipolar" if grid.bipolar else f"{'int' if grid.signed else 'uint'}{grid.bits}{' narrow' if grid.narrow else ''}"
    return f"{form}, scale {grid.scale:.6g}" + (f", offset {grid.offset:.6g}" if grid.offset else "")


def _planar(grid: IntegerGrid) -> bool:
    return grid.bipolar or grid.zero_point == -0.5


def _planes_of(grid: IntegerGrid, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Binary planes ``b_j`` (+-1, stacked on a first axis) and coefficients: ``values = sum_j coef_j b_j``."""
    if grid.bipolar:
        return np.where(codes > 0, 1.0, -1.0)[None], np.array([grid.scale])
    k = grid.bits
    u = codes.astype(np.int64) + 2 ** (k - 1)  # (c + 1/2) s = s/2 (2u - 2^k + 1) = s/2 sum_j 2^j (2 bit_j(u) - 1)
    return np.stack([2.0 * ((u >> j) & 1) - 1.0 for j in range(k)]), grid.scale * 2.0 ** np.arange(k) / 2


class _Qonnx:
    name = "qonnx"

    def weight(self, g: _graph.Graph, init: str, t: _trace.Target, hint: str) -> str:
        grid = t.grid
        codes = grid.codes(t.values)
        g.drop_init(init)
        if not _planar(grid):
            w = g.const(f"{hint}_w", codes * np.float32(grid.scale))
            self._quant(g, w, grid, hint, out=init)
            return _describe(grid)
        planes, coefs = _planes_of(grid, codes)

        def bipolar(values: np.ndarray, name: str) -> str:  # +-1 stored as int8, a quarter of float32
            signs = g.node("Cast", [g.const(f"{name}_w", values, np.int8)], f"{name}_signs", to=1)
            return g.node("BipolarQuant", [signs, g.const(f"{name}_unit", 1.0)], f"{name}_bipolar",
                          domain=QONNX_DOMAIN)

        why = _planes.write(g, init, t.values.shape, g.use(init), planes, coefs, bipolar, hint)
        if not why:
            return _describe(grid) + (f" as {len(planes)} binary planes" if len(planes) > 1 else "")
        w = g.const(f"{hint}_w", t.values)  # exact, but qonnx types it as float
        if grid.bipolar:
            g.node("BipolarQuant", [w, g.const(f"{hint}_scale", grid.scale)], hint, out=init, domain=QONNX_DOMAIN)
        else:
            g.node("Quant", [w, g.const(f"{hint}_scale", grid.scale), g.const(f"{hint}_zeropt", grid.zero_point),
                             g.const(f"{hint}_bits", float(grid.bits))], hint, out=init, domain=QONNX_DOMAIN,
                   signed=1, narrow=0, rounding_mode="ROUND")
        return f"{_describe(grid)} (one node, typed float by qonnx: {why})"

    def activation(self, g: _graph.Graph, x: str, grid: IntegerGrid, hint: str) -> str:
        return self._quant(g, x, grid, hint)

    @staticmethod
    def _quant(g: _graph.Graph, x: str, grid: IntegerGrid, hint: str, out: str | None = None) -> str:
        return g.node("Quant", [x, g.const(f"{hint}_scale", grid.scale), g.const(f"{hint}_zeropt", 0.0),
                                g.const(f"{hint}_bits", float(grid.bits))], f"{hint}_quant", out=out,
                      domain=QONNX_DOMAIN, signed=int(grid.signed), narrow=int(grid.narrow), rounding_mode="ROUND")


class _Qdq:
    name = "onnx"

    def __init__(self, clip: bool = True):
        self.clip = clip

    def weight(self, g: _graph.Graph, init: str, t: _trace.Target, hint: str) -> str:
        import ml_dtypes

        grid = t.grid
        codes = grid.codes(t.values)
        lo, hi = grid.int_range
        g.drop_init(init)
        if lo >= -8 and hi <= 7:
            q, stored = g.const(f"{hint}_int4", codes, ml_dtypes.int4), "int4"
        else:
            q, stored = g.const(f"{hint}_int8", codes, np.int8), "int8"
            if self.clip and grid.bits < 8:
                q = g.node("Clip", [q, g.const(f"{hint}_lo", lo, np.int8), g.const(f"{hint}_hi", hi, np.int8)],
                           f"{hint}_clipped")
        scale = g.const(f"{hint}_scale", grid.scale)
        if grid.offset:
            w = g.node("DequantizeLinear", [q, scale], f"{hint}_dq")
            g.node("Add", [w, g.const(f"{hint}_offset", grid.offset)], f"{hint}_offsetted", out=init)
        else:
            g.node("DequantizeLinear", [q, scale], f"{hint}_dq", out=init)
        return f"{_describe(grid)}, stored as {stored}"

    def activation(self, g: _graph.Graph, x: str, grid: IntegerGrid, hint: str) -> str:
        if grid.signed:
            raise ExportError(f"{hint}: signed input grids are not supported in QDQ export")
        scale, zp = g.const(f"{hint}_scale", grid.scale), g.const(f"{hint}_zp", 0, np.uint8)
        q = g.node("QuantizeLinear", [x, scale, zp], f"{hint}_q")
        lo, hi = grid.int_range
        if self.clip and hi < 255:
            q = g.node("Clip", [q, g.const(f"{hint}_lo", lo, np.uint8), g.const(f"{hint}_hi", hi, np.uint8)],
                       f"{hint}_clipped")
        return g.node("DequantizeLinear", [q, scale, zp], f"{hint}_dq")


def _quantize_inputs(g: _graph.Graph, writer, init: str, t: _trace.Target, acts: dict, hint: str) -> None:
    for node, index in g.use(init).frontier:
        pos = _graph.data_operand(node, index)
        if pos is None:
            raise ExportError(f"{writer.name} export: layer {t.name!r}: its quantized input meets the weight in "
                              f"{node.op_type}, where the exporter cannot tell which operand is the input")
        key = (node.input[pos], t.act)
        if key not in acts:
            acts[key] = writer.activation(g, node.input[pos], t.act, f"{hint}_input")
        node.input[pos] = acts[key]


def _write(model: nn.Module, path, example_input, writer) -> ExportResult:
    path = Path(path) if isinstance(path, (str, os.PathLike)) else None
    if path is None:
        raise TypeError("path must be a file path (str or os.PathLike)")
    onnx = require("onnx")
    tgts = _trace.targets(model, writer.name)
    example = _trace.example_for(model, example_input)
    proto, found = _trace.float_graph(model, tgts, example, dynamic=writer.name != "qonnx")
    g = _graph.Graph(proto)
    if writer.name == "qonnx":
        proto.opset_import.append(onnx.helper.make_opsetid(QONNX_DOMAIN, 1))
    inits = {}
    for init, i in found.items():
        inits.setdefault(i, []).append(init)
    acts: dict[tuple, str] = {}
    layers = []
    for i, t in enumerate(tgts):
        hint = t.name.replace(".", "_")
        form = "float"
        for init in inits[i]:
            try:
                if t.act is not None:
                    _quantize_inputs(g, writer, init, t, acts, hint)
                if t.grid is not None:
                    form = writer.weight(g, init, t, hint)
                else:
                    g.put(init, t.values)
            except ExportError as err:
                msg = _trace.one_line(err)
                raise ExportError(msg if repr(t.name) in msg else f"{writer.name} export: layer {t.name!r}: {msg}") \
                    from err
        layers.append(LayerExport(t.name, t.w_bits, t.a_bits, form, _describe(t.act) if t.act else "float"))
    schedule = schedule_of(model)
    g.finish({"pdbviz_format": writer.name, "pdbviz_schedule": schedule.to_string(model) if schedule else ""})
    if writer.name == "onnx":
        onnx.checker.check_model(proto)
    else:  # qonnx's executor needs every tensor's shape
        require("qonnx")
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.infer_shapes import InferShapes

        proto = ModelWrapper(proto).transform(InferShapes()).model
    axes = tuple(d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim if d.dim_param)
    blob = proto.SerializeToString()
    with atomic_write(path, "wb") as fh:
        fh.write(blob)
    return ExportResult(path, writer.name, len(blob), tuple(layers), axes)


def to_qonnx(model: nn.Module, path: str | os.PathLike, example_input=None) -> ExportResult:
    """Write a pdbviz-quantized ``model`` as QONNX, with ``Quant`` / ``BipolarQuant`` nodes at its bit-widths.

    Every weight keeps pdbviz's exact values and every quantized input its
    levels (see the module docstring for the forms); qonnx's executor
    reproduces the model's outputs and its ``inference_cost`` (default
    options) counts the schedule's weight bits for the layers it costs
    (Conv, Gemm, MatMul). Any weight kind pdbviz quantizes is written. The
    file has static shapes with a batch of 1 (FINN's convention).

    Args:
        model: a model returned by ``pdbviz.quantize`` (or ``load_packed``).
        path: the ``.onnx`` file to write (atomically).
        example_input: one batch the model takes (default: from ``pdbviz_info``).

    Example:
        >>> import pdbviz
        >>> q = pdbviz.quantize(pdbviz.build_model("lenet", (1, 28, 28)), "8-4-2-1/8")
        >>> to_qonnx(q, "lenet.qonnx.onnx").format  # doctest: +SKIP
        'qonnx'
    """
    return _write(model, path, example_input, _Qonnx())


def to_onnx(model: nn.Module, path: str | os.PathLike, example_input=None, clip: bool = True) -> ExportResult:
    """Write a pdbviz-quantized ``model`` as standard ONNX with integer weights (QDQ, opset 21).

    Weights are stored as int4 (grids within [-8, 7]) or int8 codes,
    followed by ``Clip`` to their range where the bit-width is below the
    storage (``clip=False`` leaves it out) and ``DequantizeLinear``; quantized
    inputs go through ``QuantizeLinear`` / ``Clip`` / ``DequantizeLinear``
    (uint8). The batch axis (and the sequence axis of token or ``(N, T, F)``
    input) is dynamic. onnxruntime runs it.

    Example:
        >>> import pdbviz
        >>> q = pdbviz.quantize(pdbviz.build_model("lenet", (1, 28, 28)), "8-4-2-1/8")
        >>> to_onnx(q, "lenet.onnx").nbytes  # doctest: +SKIP
        40123
    """
    if not isinstance(clip, bool):
        raise TypeError(f"clip must be True or False, got {clip!r}")
    return _write(model, path, example_input, _Qdq(clip))
