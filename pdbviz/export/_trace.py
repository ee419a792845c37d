"""The float ONNX graph of a quantized model, and which initializer holds which weight.

The model is traced by torch's ONNX exporter (``dynamo=True``, without its
optimiser) from a copy in which pdbviz's quantization is removed and every
weight pdbviz quantizes is one plain parameter holding a *marker*: random
values unique to that weight (tied owners share one). The exporter keeps
parameters as initializers, so each weight is found again by its marker's
bytes, whatever the exporter named it, whatever the input's rank, and however
the graph transposes, slices or gathers it afterwards. The writers then put
the weight's integer form in place of the marker.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from ..quant.convert import dequantize, float_weight, schedule_of
from ..quant.discovery import discover
from ..quant.layers import weight_quant
from ..quant.protocol import model_info
from .grid import ExportError, IntegerGrid, activation_grid, require, weight_grid

OPSET = 21
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@dataclass
class Target:
    """One weight of the model as the writers see it."""

    name: str
    kind: str
    params: int
    w_bits: int
    a_bits: int
    owners: tuple[tuple[str, str], ...]
    values: np.ndarray  # the quantized (or float) values the model computes with
    grid: IntegerGrid | None  # None: the weight stays float
    act: IntegerGrid | None  # None: its input stays float


def one_line(err: BaseException) -> str:
    """The first non-empty line of an exception's message, without terminal colour codes."""
    text = _ANSI.sub("", str(err))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def check_quantized(model, fmt: str) -> None:
    """ExportError unless ``model`` is a module quantized by pdbviz below 32 bits somewhere."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module quantized with pdbviz.quantize, got {type(model).__name__}")
    schedule = schedule_of(model)
    if schedule is None or all(s.is_float for s in schedule.values()):
        raise ExportError(f"{type(model).__name__} is not quantized: nothing to export as {fmt}; quantize it first, "
                          "e.g. pdbviz.quantize(model, '8-4-2-1')")


def targets(model: nn.Module, fmt: str) -> list[Target]:
    """The weights of ``model`` that pdbviz quantizes (weight or input), with their grids."""
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
                values = getattr(modules[path], pname).detach().float().cpu()
                q = wq.weight_quantizer
                try:
                    grid = weight_grid(q, values, float_weight(model, entry.name).float().cpu()) \
                        if q is not None else None
                    act = activation_grid(wq.input_quantizer) if wq.input_quantizer is not None else None
                except ExportError as err:
                    raise ExportError(f"{fmt} export: layer {entry.name!r}: {one_line(err)}") from err
                out.append(Target(entry.name, entry.kind, entry.numel, wq.spec.w_bits, wq.spec.a_bits,
                                  tuple(entry.owners), values.numpy(), grid, act))
    finally:
        model.train(was_training)
    return out


def example_for(model: nn.Module, example_input) -> torch.Tensor:
    """One batch the model takes: ``example_input`` or a zero batch of ``pdbviz_info.input_shape``."""
    if example_input is None:
        example_input = model_info(model).example_input(batch=2)
        if example_input is None:
            raise ExportError(f"{type(model).__name__} has no pdbviz_info.input_shape; pass example_input= "
                              "(one batch of inputs)")
    if not isinstance(example_input, torch.Tensor):
        raise TypeError(f"example_input must be a tensor (one batch), got {type(example_input).__name__}")
    return example_input.detach().cpu()


def dynamic_axes(example: torch.Tensor) -> dict[int, str]:
    """The axes of the input left free in the graph: the batch, and the sequence of token or ``(N, T, F)`` input."""
    axes = {0: "batch"}
    if example.dim() == 2 and not example.is_floating_point() or example.dim() == 3 and example.is_floating_point():
        axes[1] = "sequence"
    return axes


def _marker_key(array: np.ndarray) -> bytes:
    return hashlib.sha1(np.ascontiguousarray(array, np.float32).tobytes()).digest() + str(array.shape).encode()


def _export_copy(model: nn.Module, tgts: list[Target]) -> tuple[nn.Module, dict[bytes, int]]:
    """A float copy of ``model`` whose target weights are plain parameters holding markers, and the markers."""
    copy = dequantize(model, bake=True).eval().cpu()
    gen = torch.Generator().manual_seed(0)
    markers = {}
    for i, t in enumerate(tgts):
        marker = nn.Parameter(torch.randn(t.values.shape, generator=gen) + 4 * i, requires_grad=False)
        for path, pname in t.owners:
            module = copy.get_submodule(path) if path else copy
            if parametrize.is_parametrized(module, pname):  # a weight_norm's weight becomes one tensor
                parametrize.remove_parametrizations(module, pname, leave_parametrized=True)
            setattr(module, pname, marker)
        markers[_marker_key(marker.detach().numpy())] = i
    return copy, markers


def float_graph(model: nn.Module, tgts: list[Target], example: torch.Tensor, dynamic: bool = True):
    """The ONNX graph of ``model`` with markers for ``tgts``, and ``{initializer name: target index}``.

    With ``dynamic=False`` every axis keeps the example's size (one sample:
    qonnx's executor and FINN need static shapes).
    """
    onnx = require("onnx")
    copy, markers = _export_copy(model, tgts)
    axes = dynamic_axes(example) if dynamic else {}
    if not dynamic:
        example = example[:1]
    elif example.shape[0] < 2:  # the exporter fixes an axis of size 1
        example = torch.cat([example, example])
    attempts = [list(axes), [0]] if len(axes) > 1 else [list(axes)]  # a model fixing its sequence: batch alone
    program = last = None
    for keep in attempts:
        shapes = ({i: torch.export.Dim.DYNAMIC for i in keep},) if keep else None
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            try:
                program = torch.onnx.export(copy, (example,), dynamo=True, optimize=False, opset_version=OPSET,
                                            input_names=["input"], output_names=["output"], verbose=False,
                                            dynamic_shapes=shapes)
                break
            except Exception as err:  # noqa: BLE001 - any exporter failure is reported as one line, cause kept
                last = err
    if program is None:
        raise ExportError(f"torch.onnx.export could not trace {type(model).__name__}: {one_line(last)}") from last
    proto = program.model_proto
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    names = {dims[i].dim_param: axes[i] for i in axes if i < len(dims) and dims[i].dim_param}
    for vi in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:  # the exporter's s0, s1...
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param in names:
                d.dim_param = names[d.dim_param]
    from onnx import numpy_helper

    found: dict[str, int] = {}
    for init in proto.graph.initializer:
        if init.data_type == onnx.TensorProto.FLOAT:
            i = markers.get(_marker_key(numpy_helper.to_array(init)))
            if i is not None:
                found[init.name] = i
    _fold(proto, found)
    missing = [tgts[i].name for i in set(markers.values()) - set(found.values())]
    if missing:
        raise ExportError(f"layer {missing[0]!r}: the exporter did not keep its weight as one tensor of the graph "
                          f"(it was folded into another constant), so its integer form cannot be put in place")
    return proto, found


def _fold(proto, keep: dict[str, int]) -> None:
    """Fold the graph's constant computations (zero biases, shapes) in place, leaving the weights ``keep`` as they
    are (they are graph inputs while folding, then initializers again)."""
    onnx = require("onnx")
    require("onnxscript")
    import onnxscript.optimizer

    held = [t for t in proto.graph.initializer if t.name in keep]
    for t in held:
        proto.graph.initializer.remove(t)
        proto.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnxscript.optimizer.fold_constants(proto)
        onnxscript.optimizer.remove_unused_nodes(proto)
    names = {t.name for t in held}
    inputs = [i for i in proto.graph.input if i.name not in names]
    del proto.graph.input[:]
    proto.graph.input.extend(inputs)
    used = {i for n in proto.graph.node for i in n.input}
    proto.graph.initializer.extend(t for t in held if t.name in used)
