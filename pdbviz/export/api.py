"""One entry point for every format: ``export_model(model, path, to=...)``."""

from __future__ import annotations

import os

from torch import nn

from .formats import get_format
from .torchao_config import TorchaoExport
from .writers import ExportResult


def export_model(model: nn.Module, path: str | os.PathLike, to: str = "qonnx",
                 example_input=None) -> ExportResult | TorchaoExport:
    """Write a pdbviz-quantized ``model`` to ``path`` in the registered format ``to`` (see ``formats()``).

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
    fmt = get_format(to)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike), got {type(path).__name__}")
    return fmt.writer(model, path, example_input)
