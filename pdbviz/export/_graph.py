"""The float ONNX graph of a quantized model, where its weights are, and the edits both writers share.

A pdbviz model is traced as a float model whose weights hold the quantized
values (``dequantize(bake=True)``) with torch's ONNX exporter, without its
optimiser (which would fold BatchNorm into the convolutions and lose the
weights); constants are folded. Each quantized weight is then found by name
as an initializer consumed by ``Conv``, ``Gemm`` or ``MatMul``, checked to hold
exactly the quantized values, and the writers replace it by its integer form.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..quant.convert import dequantize, float_weight, schedule_of
from ..quant.discovery import discover
from ..quant.layers import weight_quant
from ..quant.protocol import model_info
from .grid import ExportError, IntegerGrid, activation_grid, require, weight_grid

OPSET = 21
MAC_OPS = ("Conv", "Gemm", "MatMul")
_KINDS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass
class Target:
    """One weight of the model as the writers see it."""

    name: str
    kind: str
    params: int
    w_bits: int
    a_bits: int
    init: str  # the ONNX initializer holding its (float, quantized) values
    values: np.ndarray
    grid: IntegerGrid | None  # None: the weight stays float
    act: IntegerGrid | None  # None: its input stays float


def check_quantized(model, fmt: str) -> None:
    """ExportError unless ``model`` is a module quantized by pdbviz below 32 bits somewhere."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module quantized with pdbviz.quantize, got {type(model).__name__}")
    schedule = schedule_of(model)
    if schedule is None or all(s.is_float for s in schedule.values()):
        raise ExportError(f"{type(model).__name__} is not quantized: nothing to export as {fmt}; quantize it first, "
                          "e.g. pdbviz.quantize(model, '8-4-2-1')")


def targets(model: nn.Module, fmt: str) -> list[Target]:
    """The quantized weights of ``model`` with their grids; ExportError for kinds ``fmt`` cannot express."""
    check_quantized(model, fmt)
    modules = dict(model.named_modules())
    out = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for entry in discover(model).entries:
                path, pname = entry.owners[0]
                wq = weight_quant(modules[path], pname)
                if wq is None or (wq.weight_quantizer is None and wq.input_quantizer is None):
                    continue
                bad = [p for p, _ in entry.owners if not isinstance(modules[p], _KINDS)]
                if bad or entry.use != "module":
                    why = f"a {entry.kind} weight" if bad else "a weight used outside its module's forward"
                    raise ExportError(f"{fmt} export cannot express {entry.name!r}, {why}; it exports the weights "
                                      "of Linear and Conv1d/2d/3d layers (keep other layers at 32 bits)")
                values = getattr(modules[path], pname).detach().float().cpu()
                q = wq.weight_quantizer
                w = float_weight(model, entry.name).float().cpu()
                out.append(Target(entry.name, entry.kind, entry.numel, wq.spec.w_bits, wq.spec.a_bits,
                                  f"{path}.{pname}" if path else pname, values.numpy(),
                                  weight_grid(q, values, w) if q is not None else None,
                                  activation_grid(wq.input_quantizer) if wq.input_quantizer is not None else None))
    finally:
        model.train(was_training)
    return out


def example_for(model: nn.Module, example_input) -> torch.Tensor:
    """One sample the model takes: ``example_input`` or a zero sample of ``pdbviz_info.input_shape``."""
    if example_input is None:
        example_input = model_info(model).example_input(batch=1)
        if example_input is None:
            raise ExportError(f"{type(model).__name__} has no pdbviz_info.input_shape; pass example_input= "
                              "(one batch of inputs)")
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a tensor (one batch), got {type(example_input).__name__}")
    return example_input[:1].detach().cpu()


def float_graph(model: nn.Module, example: torch.Tensor, dynamic_batch: bool = True):
    """The ONNX graph of ``model`` with the quantized values baked into its float weights.

    With ``dynamic_batch=False`` the batch size is fixed to 1 (qonnx's executor needs static shapes).
    """
    onnx = require("onnx")
    require("onnxscript")
    import onnxscript.optimizer

    baked = dequantize(model, bake=True).eval().cpu()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(baked, (example,), dynamo=True, optimize=False, opset_version=OPSET,
                                        input_names=["input"], output_names=["output"], verbose=False,
                                        dynamic_shapes=({0: torch.export.Dim("batch")},) if dynamic_batch else None)
        except Exception as err:  # noqa: BLE001 - any exporter failure is reported as one line
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExportError(f"torch.onnx.export could not trace {type(model).__name__}: {first}") from None
    proto = program.model_proto
    onnxscript.optimizer.fold_constants(proto)
    onnxscript.optimizer.remove_unused_nodes(proto)
    onnx.checker.check_model(proto)
    return proto


class Graph:
    """Small edits of an ONNX graph: constants, new nodes, consumers, a topological sort at the end."""

    def __init__(self, proto):
        from onnx import numpy_helper

        self.proto, self.g, self._np = proto, proto.graph, numpy_helper
        self.inits = {i.name: i for i in self.g.initializer}
        self._names = {n for node in self.g.node for n in [*node.input, *node.output]} | set(self.inits) | \
            {i.name for i in self.g.input} | {o.name for o in self.g.output}
        self.new_nodes: list = []

    def unique(self, hint: str) -> str:
        name, i = hint, 1
        while name in self._names:
            name, i = f"{hint}_{i}", i + 1
        self._names.add(name)
        return name

    def array(self, name: str) -> np.ndarray:
        return self._np.to_array(self.inits[name])

    def const(self, hint: str, value, dtype=np.float32) -> str:
        """A new initializer holding ``value`` as ``dtype`` (a numpy or ml_dtypes type: int4 is packed)."""
        name = self.unique(hint)
        tensor = self._np.from_array(np.asarray(value).astype(dtype), name)
        self.g.initializer.append(tensor)
        self.inits[name] = tensor
        return name

    def node(self, op: str, inputs: list[str], hint: str, out: str | None = None, domain: str = "", **attrs) -> str:
        from onnx import helper

        out = out or self.unique(hint)
        self.new_nodes.append(helper.make_node(op, inputs, [out], name=self.unique(f"{hint}_{op}"), domain=domain,
                                               **attrs))
        return out

    def consumers(self, tensor: str) -> list:
        return [n for n in self.g.node if tensor in n.input]

    def finish(self, metadata: dict[str, str]) -> None:
        """Add the new nodes in topological order, drop unused initializers, stamp the metadata."""
        nodes = list(self.g.node) + self.new_nodes
        ready = {i.name for i in self.g.input} | set(self.inits) | {""}
        ordered, pending = [], nodes
        while pending:
            rest = [n for n in pending if not all(i in ready for i in n.input)]
            done = [n for n in pending if all(i in ready for i in n.input)]
            if not done:
                raise ExportError("internal error: the edited graph has a cycle")
            ordered += done
            ready.update(o for n in done for o in n.output)
            pending = rest
        del self.g.node[:]
        self.g.node.extend(ordered)
        used = {i for n in ordered for i in n.input} | {o.name for o in self.g.output}
        keep = [t for t in self.g.initializer if t.name in used]
        del self.g.initializer[:]
        self.g.initializer.extend(keep)
        del self.g.value_info[:]
        for item in [*self.g.node, *self.g.input, *self.g.output, *self.g.initializer]:  # the exporter's notes
            del item.metadata_props[:]
            item.doc_string = ""
        for key, value in {"pdbviz_version": __version__, **metadata}.items():
            entry = self.proto.metadata_props.add()
            entry.key, entry.value = key, value


def locate(graph: Graph, t: Target) -> list:
    """The nodes multiplying weight ``t``; ExportError when it is not where a writer can replace it."""
    if t.init not in graph.inits:
        raise ExportError(f"cannot find the weight {t.name!r} in the exported graph (the exporter renamed or "
                          "transformed it)")
    if not np.array_equal(graph.array(t.init), t.values):
        raise ExportError(f"the exported graph changed the values of {t.name!r}; cannot replace them exactly")
    users = graph.consumers(t.init)
    if not users or any(n.op_type not in MAC_OPS or list(n.input).index(t.init) != 1 for n in users):
        ops = sorted({n.op_type for n in users})
        raise ExportError(f"the weight {t.name!r} feeds {ops or 'no node'} in the exported graph; only Conv, Gemm "
                          "and MatMul weights can be replaced by their integer form")
    return users


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            from onnx import helper

            return helper.get_attribute_value(a)
    return default


def _set_attr(node, name: str, value) -> None:
    from onnx import helper

    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def window_sum(graph: Graph, node, weight_shape: tuple[int, ...], hint: str) -> tuple[str, float]:
    """``(tensor, factor)``: ``factor * tensor`` is the layer applied to an all-ones weight (one output channel).

    That is the sum of the input over each output's receptive field: for a
    ``Gemm`` or ``MatMul`` the sum over the input features; for a ``Conv`` the
    channel sum pooled over the kernel window (``AveragePool`` with the
    convolution's strides, pads and dilations, times the window size).
    """
    x = node.input[0]
    if node.op_type == "Gemm":
        if _attr(node, "transA", 0):
            raise ExportError(f"{hint}: a Gemm with transA=1 is not supported")
        axis = 1
    elif node.op_type == "MatMul":
        axis = -1
    else:
        axis = 1
        if _attr(node, "group", 1) != 1:
            raise ExportError(f"{hint}: a grouped convolution cannot carry DoReFa's weight offset; use "
                              "symmetric weights or 1 bit for it")
        if _attr(node, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise ExportError(f"{hint}: a convolution with auto_pad is not supported")
    summed = graph.node("ReduceSum", [x, graph.const(f"{hint}_axes", [axis], np.int64)], f"{hint}_sum", keepdims=1)
    if node.op_type != "Conv":
        return summed, 1.0
    kernel = list(_attr(node, "kernel_shape", weight_shape[2:]))
    rank = len(kernel)
    attrs = {"kernel_shape": kernel, "strides": list(_attr(node, "strides", [1] * rank)),
             "pads": list(_attr(node, "pads", [0] * 2 * rank)), "count_include_pad": 1}
    dilations = list(_attr(node, "dilations", [1] * rank))
    if any(d != 1 for d in dilations):
        attrs["dilations"] = dilations
    pooled = graph.node("AveragePool", [summed], f"{hint}_window", **attrs)
    return pooled, float(math.prod(kernel))


def affine_output(graph: Graph, node, t: Target, out_scale: float, offset: float) -> None:
    """Make ``node`` compute ``out_scale * node(x, W) + offset * node(x, ones) + bias`` under its old output name."""
    if out_scale == 1.0 and offset == 0.0:
        return
    hint = t.name.replace(".", "_")
    y, before = node.output[0], len(graph.new_nodes)
    cur = node.output[0] = graph.unique(f"{hint}_mac")
    bias = None
    if out_scale != 1.0:
        if node.op_type == "Gemm":
            _set_attr(node, "alpha", float(_attr(node, "alpha", 1.0)) * out_scale)
        else:
            if node.op_type == "Conv" and len(node.input) > 2 and node.input[2]:
                bias = node.input[2]
                del node.input[2]
            cur = graph.node("Mul", [cur, graph.const(f"{hint}_scale", out_scale)], f"{hint}_scaled")
    if offset != 0.0:
        total, factor = window_sum(graph, node, t.values.shape, hint)
        corr = graph.node("Mul", [total, graph.const(f"{hint}_offset", offset * factor)], f"{hint}_corr")
        cur = graph.node("Add", [cur, corr], f"{hint}_offsetted")
    if bias is not None:
        if bias not in graph.inits:
            raise ExportError(f"{t.name!r}: its bias is computed in the graph; cannot move it after the scale")
        b = graph.array(bias).astype(np.float32)
        cur = graph.node("Add", [cur, graph.const(f"{hint}_bias", b.reshape(1, -1, *[1] * (t.values.ndim - 2)))],
                         f"{hint}_biased")
    if len(graph.new_nodes) == before:  # a Gemm's alpha took the scale: nothing after the node
        node.output[0] = y
    else:
        graph.new_nodes[-1].output[0] = y
