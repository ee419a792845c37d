"""One entry point for every format: ``export_model(model, path, to=...)``."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from .._io import atomic_write
from .torchao_config import TorchaoExport, torchao_config
from .writers import ExportResult, to_onnx, to_qonnx

#: the formats ``export_model`` writes, and the suffix of their default file names
FORMATS = {"qonnx": ".qonnx.onnx", "onnx": ".onnx", "torchao": ".torchao.json"}


def export_model(model: nn.Module, path: str | os.PathLike, to: str = "qonnx",
                 example_input=None) -> ExportResult | TorchaoExport:
    """Write a pdbviz-quantized ``model`` to ``path`` in the format ``to``.

    ``"qonnx"`` and ``"onnx"`` write the model (``to_qonnx``, ``to_onnx``) and
    return an ``ExportResult``; ``"torchao"`` writes the ``FqnToConfig`` as
    JSON and returns the ``TorchaoExport`` (its ``notes`` say what torchao
    cannot express).

    Example:
        >>> import pdbviz
        >>> q = pdbviz.quantize(pdbviz.build_model("lenet", (1, 28, 28)), "8-4-2-1/8")
        >>> export_model(q, "lenet.onnx", to="onnx").format  # doctest: +SKIP
        'onnx'
    """
    if to not in FORMATS:
        raise ValueError(f"to must be one of {tuple(FORMATS)}, got {to!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
    if to == "qonnx":
        return to_qonnx(model, path, example_input)
    if to == "onnx":
        return to_onnx(model, path, example_input)
    result = torchao_config(model)
    with atomic_write(Path(path), "w", encoding="utf-8") as fh:
        fh.write(result.to_json())
    return result
