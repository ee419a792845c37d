"""Take a quantized model out of pdbviz: QONNX, ONNX with integer weights (QDQ), and torchao configs.

Each format is checked by its own tool: ``run_qonnx`` (qonnx's executor),
``qonnx_cost`` (qonnx's inference cost), ``run_onnx`` (onnxruntime), and
``torchao.quantize_`` for the ``FqnToConfig`` of ``torchao_config``. Each
format is one registration (``formats()``, ``register_format``) that
``export_model`` and the command line read. The libraries come with the extra
``pip install "pdbviz[export]"`` and are imported only when used.

Example::

    import pdbviz
    from pdbviz import export

    q = pdbviz.quantize(pdbviz.build_model("lenet", (1, 28, 28)), "8-4-2-1/8")
    export.to_qonnx(q, "lenet.qonnx.onnx")
    export.to_onnx(q, "lenet.onnx")
    cfg = export.torchao_config(q).config
"""

from .api import export_model
from .formats import ExportFormat, formats, register_format
from .grid import ExportError, IntegerGrid, activation_grid, weight_grid
from .torchao_config import TorchaoExport, torchao_config
from .verify import Agreement, QonnxCost, agreement, qonnx_cost, run_onnx, run_qonnx
from .writers import ExportResult, LayerExport, to_onnx, to_qonnx

__all__ = [
    "Agreement",
    "ExportError",
    "ExportFormat",
    "ExportResult",
    "IntegerGrid",
    "LayerExport",
    "QonnxCost",
    "TorchaoExport",
    "activation_grid",
    "agreement",
    "export_model",
    "formats",
    "qonnx_cost",
    "register_format",
    "run_onnx",
    "run_qonnx",
    "to_onnx",
    "to_qonnx",
    "torchao_config",
    "weight_grid",
]
