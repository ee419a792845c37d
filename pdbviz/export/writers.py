"""Write a quantized model as QONNX (``Quant`` / ``BipolarQuant`` nodes) or as ONNX with integer weights (QDQ).

Both start from the same float graph (``_graph``) and replace each quantized
weight by its integer form (``grid``), and insert the quantization of each
quantized input before the layer that multiplies it:

- **QONNX**: a weight on a grid with zero-point 0 becomes
  ``Quant(w, scale, 0, bits)``; a bipolar (1-bit) weight becomes
  ``BipolarQuant(sign, 1)`` with its scale applied to the layer's output;
  DoReFa's k-bit weights, whose grid has the zero-point -1/2, become
  ``Quant(w - scale/2, scale, 0, k)`` plus the constant ``scale/2`` carried
  through the layer (``scale/2`` times the input summed over each output's
  window), so that qonnx's datatype inference and cost tools see k-bit
  integers. Inputs: ``Quant(x, 1/(2^k - 1), 0, k, signed=0)``.
- **ONNX QDQ**: the codes stored as int4 (bit-widths up to 4) or int8,
  ``Clip`` to the codes' range where the bit-width is below int8, then
  ``DequantizeLinear``; the same offset for DoReFa. Inputs:
  ``QuantizeLinear`` to uint8, ``Clip`` below 8 bits, ``DequantizeLinear``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from .._io import atomic_write
from ..quant.convert import schedule_of
from . import _graph
from .grid import IntegerGrid, require

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
    """

    path: Path
    format: str
    nbytes: int
    layers: tuple[LayerExport, ...]


def _describe(grid: IntegerGrid) -> str:
    kind = "bipolar" if grid.bipolar else f"{'int' if grid.signed else 'uint'}{grid.bits}{' narrow' if grid.narrow else ''}"
    return f"{kind}, scale {grid.scale:.6g}" + (f", offset {grid.offset:.6g}" if grid.offset else "")


class _Qonnx:
    name = "qonnx"

    def weight(self, g: _graph.Graph, t: _graph.Target) -> tuple[str, float]:
        grid, hint = t.grid, t.name.replace(".", "_")
        codes = grid.codes(t.values)
        if grid.bipolar:
            sign = g.const(f"{hint}_sign", codes, np.float32)
            return g.node("BipolarQuant", [sign, g.const(f"{hint}_unit", 1.0)], f"{hint}_bipolar",
                          domain=QONNX_DOMAIN), grid.scale
        w = g.const(f"{hint}_int", codes * np.float32(grid.scale), np.float32)
        return self._quant(g, w, grid, hint), 1.0

    def activation(self, g: _graph.Graph, x: str, grid: IntegerGrid, hint: str) -> str:
        return self._quant(g, x, grid, hint)

    @staticmethod
    def _quant(g: _graph.Graph, x: str, grid: IntegerGrid, hint: str) -> str:
        return g.node("Quant", [x, g.const(f"{hint}_scale", grid.scale), g.const(f"{hint}_zeropt", 0.0),
                                g.const(f"{hint}_bits", float(grid.bits))], f"{hint}_quant", domain=QONNX_DOMAIN,
                      signed=int(grid.signed), narrow=int(grid.narrow), rounding_mode="ROUND")


class _Qdq:
    name = "onnx"

    def __init__(self, clip: bool = True):
        self.clip = clip

    def weight(self, g: _graph.Graph, t: _graph.Target) -> tuple[str, float]:
        import ml_dtypes

        grid, hint = t.grid, t.name.replace(".", "_")
        codes = grid.codes(t.values)
        lo, hi = grid.int_range
        if lo >= -8 and hi <= 7:
            q = g.const(f"{hint}_int4", codes, ml_dtypes.int4)
        else:
            q = g.const(f"{hint}_int8", codes, np.int8)
            if self.clip and grid.bits < 8:
                q = g.node("Clip", [q, g.const(f"{hint}_lo", lo, np.int8), g.const(f"{hint}_hi", hi, np.int8)],
                           f"{hint}_clipped")
        return g.node("DequantizeLinear", [q, g.const(f"{hint}_scale", grid.scale)], f"{hint}_dq"), 1.0

    def activation(self, g: _graph.Graph, x: str, grid: IntegerGrid, hint: str) -> str:
        if grid.signed:
            raise _graph.ExportError(f"{hint}: signed input grids are not supported in QDQ export")
        scale, zp = g.const(f"{hint}_scale", grid.scale), g.const(f"{hint}_zp", 0, np.uint8)
        q = g.node("QuantizeLinear", [x, scale, zp], f"{hint}_q")
        lo, hi = grid.int_range
        if self.clip and hi < 255:
            q = g.node("Clip", [q, g.const(f"{hint}_lo", lo, np.uint8), g.const(f"{hint}_hi", hi, np.uint8)],
                       f"{hint}_clipped")
        return g.node("DequantizeLinear", [q, scale, zp], f"{hint}_dq")


def _write(model: nn.Module, path, example_input, writer) -> ExportResult:
    path = Path(path) if isinstance(path, (str, os.PathLike)) else None
    if path is None:
        raise TypeError("path must be a file path (str or os.PathLike)")
    onnx = require("onnx")
    targets = _graph.targets(model, writer.name)
    example = _graph.example_for(model, example_input)
    proto = _graph.float_graph(model, example, dynamic_batch=writer.name != "qonnx")
    g = _graph.Graph(proto)
    if writer.name == "qonnx":
        proto.opset_import.append(onnx.helper.make_opsetid(QONNX_DOMAIN, 1))
    acts: dict[tuple, str] = {}
    layers = []
    for t in targets:
        users = _graph.locate(g, t)
        hint = t.name.replace(".", "_")
        if t.act is not None:
            for node in users:
                key = (node.input[0], t.act)
                if key not in acts:
                    acts[key] = writer.activation(g, node.input[0], t.act, f"{hint}_input")
                node.input[0] = acts[key]
        if t.grid is not None:
            w, out_scale = writer.weight(g, t)
            for node in users:
                node.input[1] = w
                _graph.affine_output(g, node, t, out_scale, t.grid.offset)
        layers.append(LayerExport(t.name, t.w_bits, t.a_bits, _describe(t.grid) if t.grid else "float",
                                  _describe(t.act) if t.act else "float"))
    schedule = schedule_of(model)
    g.finish({"pdbviz_format": writer.name, "pdbviz_schedule": schedule.to_string(model) if schedule else ""})
    if writer.name == "onnx":
        onnx.checker.check_model(proto)
    else:  # qonnx's executor needs every tensor's shape
        require("qonnx")
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.transformation.infer_shapes import InferShapes

        proto = ModelWrapper(proto).transform(InferShapes()).model
    blob = proto.SerializeToString()
    with atomic_write(path, "wb") as fh:
        fh.write(blob)
    return ExportResult(path, writer.name, len(blob), tuple(layers))


def to_qonnx(model: nn.Module, path: str | os.PathLike, example_input=None) -> ExportResult:
    """Write a pdbviz-quantized ``model`` as QONNX, with ``Quant`` / ``BipolarQuant`` nodes at its bit-widths.

    Every weight keeps pdbviz's exact values and every quantized input its
    levels (see the module docstring for the forms); qonnx's executor
    reproduces the model's outputs and its cost tool counts the schedule's
    bits. Layers: Linear and Conv1d/2d/3d; other kinds raise ExportError.

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

    Weights are stored as int4 (bit-widths up to 4) or int8 codes, followed by
    ``Clip`` to their range where the bit-width is below the storage
    (``clip=False`` leaves it out) and ``DequantizeLinear``; quantized inputs
    go through ``QuantizeLinear`` / ``Clip`` / ``DequantizeLinear`` (uint8).
    onnxruntime runs it.

    Example:
        >>> import pdbviz
        >>> q = pdbviz.quantize(pdbviz.build_model("lenet", (1, 28, 28)), "8-4-2-1/8")
        >>> to_onnx(q, "lenet.onnx").nbytes  # doctest: +SKIP
        40123
    """
    if not isinstance(clip, bool):
        raise TypeError(f"clip must be True or False, got {clip!r}")
    return _write(model, path, example_input, _Qdq(clip))
