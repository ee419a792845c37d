"""Run an exported file with its own tool, and count its bits with qonnx: the checks of an export.

``run_onnx`` uses onnxruntime, ``run_qonnx`` qonnx's executor (its own
``Quant`` implementation, onnxruntime for the standard nodes), and
``qonnx_cost`` qonnx's ``inference_cost``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .grid import require


def _array(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a tensor or an array (one batch of inputs), got {type(x).__name__}")
    if np.issubdtype(x.dtype, np.integer):  # token ids
        return np.ascontiguousarray(x, dtype=np.int64)
    return np.ascontiguousarray(x, dtype=np.float32)


def _file(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"exported model not found: {path}")
    return str(path)


def run_onnx(path: str | os.PathLike, x) -> np.ndarray:
    """Outputs of the ONNX file at ``path`` on the batch ``x``, computed by onnxruntime (CPU).

    Example:
        >>> run_onnx("lenet.onnx", torch.rand(4, 1, 28, 28)).shape  # doctest: +SKIP
        (4, 10)
    """
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(_file(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: _array(x)})[0]


def run_qonnx(path: str | os.PathLike, x) -> np.ndarray:
    """Outputs of the QONNX file at ``path`` on the batch ``x``, computed by qonnx's ``execute_onnx``.

    Example:
        >>> run_qonnx("lenet.qonnx.onnx", torch.rand(4, 1, 28, 28)).shape  # doctest: +SKIP
        (4, 10)
    """
    require("qonnx")
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    model = ModelWrapper(_file(path))
    name = model.graph.input[0].name
    out = model.graph.output[0].name
    return np.concatenate([execute_onnx(model, {name: row[None]})[out] for row in _array(x)])


@dataclass(frozen=True)
class QonnxCost:
    """What qonnx's ``inference_cost`` counts in a file (one sample).

    Attributes:
        weight_bits: total bits of the weights of Conv / Gemm / MatMul nodes.
        weight_elems: their number of values.
        bits_by_type: weight values per qonnx datatype name (``SCALEDINT<4>``, ``BIPOLAR``...).
        macs: multiply-accumulates.
        bops: bit operations (``MACs * input bits * weight bits``).
        unsupported: op types it does not cost.
    """

    weight_bits: float
    weight_elems: float
    bits_by_type: dict
    macs: float
    bops: float
    unsupported: str


def qonnx_cost(path: str | os.PathLike, discount_sparsity: bool = True) -> QonnxCost:
    """qonnx's inference cost of the QONNX file at ``path``, with qonnx's default options.

    qonnx discounts weights that are zero (``discount_sparsity``); pdbviz
    stores a zero only where a weight's value is zero (symmetric grids), so
    for DoReFa and LSQ weights without zeros the count is the schedule's bits.

    Example:
        >>> qonnx_cost("lenet.qonnx.onnx").weight_bits  # doctest: +SKIP
        180448.0
    """
    if not isinstance(discount_sparsity, bool):
        raise TypeError(f"discount_sparsity must be True or False, got {discount_sparsity!r}")
    require("qonnx")
    from qonnx.util.inference_cost import inference_cost

    res = inference_cost(_file(path), discount_sparsity=discount_sparsity)["total_cost"]
    by_type = {k.removeprefix("mem_w_"): v for k, v in res.items() if k.startswith("mem_w_")}
    return QonnxCost(float(res["total_mem_w_bits"]), float(res["total_mem_w_elems"]), by_type,
                     float(res["total_macs"]), float(res["total_bops"]), str(res.get("unsupported", "")))


@dataclass(frozen=True)
class Agreement:
    """How closely another runtime's outputs follow pdbviz's on the same inputs.

    Attributes:
        max_abs_diff: largest absolute difference of any output.
        mean_abs_diff: mean absolute difference.
        argmax_agreement: share of samples whose largest output is the same.
        accuracy_reference: accuracy of the reference outputs (NaN without labels).
        accuracy_other: accuracy of the other outputs (NaN without labels).
    """

    max_abs_diff: float
    mean_abs_diff: float
    argmax_agreement: float
    accuracy_reference: float
    accuracy_other: float


def agreement(reference, other, y=None) -> Agreement:
    """Compare two output batches (``(n, classes)``), and their accuracies on labels ``y`` when given.

    Example:
        >>> a = agreement(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0.0, 0.9], [0.2, 0.0]]), y=[1, 1])
        >>> round(a.max_abs_diff, 3), a.argmax_agreement, a.accuracy_reference
        (0.8, 1.0, 0.5)
    """
    ref, got = _array(reference), _array(other)
    if ref.shape != got.shape or ref.ndim != 2:
        raise ValueError(f"reference and other must be output batches of one shape (n, classes), got {ref.shape} "
                         f"and {got.shape}")
    diff = np.abs(ref.astype(np.float64) - got)
    acc_ref = acc_got = float("nan")
    if y is not None:
        labels = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y).reshape(-1)
        if labels.shape != (len(ref),):
            raise ValueError(f"y must hold one label per sample ({len(ref)}), got shape {labels.shape}")
        acc_ref, acc_got = float((ref.argmax(1) == labels).mean()), float((got.argmax(1) == labels).mean())
    return Agreement(float(diff.max()), float(diff.mean()), float((ref.argmax(1) == got.argmax(1)).mean()),
                     acc_ref, acc_got)
