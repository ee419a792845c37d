"""``audit_onnx``: the weights an exported ONNX file stores, against the bits its graph declares for them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

#: the columns of an ONNX audit table
ONNX_COLUMNS = ["weight", "node", "op", "declared_by", "bits", "values", "allowed", "verdict"]
#: ONNX ops that multiply a weight, and the input positions where a weight may be
_WEIGHT_INPUTS = {"Conv": (1,), "ConvTranspose": (1,), "Gemm": (0, 1), "MatMul": (0, 1), "Gather": (0,)}
#: ops a weight passes through on its way from its initializer to the multiplication (first input followed)
_PASS = {"Cast", "Transpose", "Reshape", "Identity", "Unsqueeze", "Squeeze", "Mul", "Div", "Flatten", "Add", "Clip",
         "Slice", "Split", "Concat"}
_QUANT = {"DequantizeLinear", "Quant", "IntQuant", "BipolarQuant"}


@dataclass(frozen=True)
class OnnxAuditReport:
    """Per weight operand of an ONNX file: its stored initializer's distinct values against the declared bits.

    Attributes:
        table: one row per (weight initializer, multiplying node): ``bits``
            declared by the graph (a QONNX ``Quant``'s bit-width, 1 for
            ``BipolarQuant``, the storage type's bits for ``DequantizeLinear``,
            32 for a float initializer used as it is), ``values`` its distinct
            values, ``allowed`` ``2^bits`` (none at 32), ``verdict`` ok or LIE.
        path: the file.
    """

    table: pd.DataFrame
    path: Path

    @property
    def lies(self) -> int:
        """Weights storing more distinct values than their declared bits allow."""
        return int((self.table.verdict == "LIE").sum()) if len(self.table) else 0

    @property
    def summary(self) -> str:
        """One line: ``"N weights, M quantized, 0 lies"``."""
        quantized = int((self.table.bits < 32).sum()) if len(self.table) else 0
        return f"{len(self.table)} weights, {quantized} quantized, {self.lies} {'lie' if self.lies == 1 else 'lies'}"

    def lines(self) -> list[str]:
        """The table, then the summary, as lines of text."""
        return [*self.table.to_string(index=False).splitlines(), "", self.summary]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_html_(self) -> str:
        import html

        return self.table.to_html(index=False, border=0) + f"<p>{html.escape(self.summary)}</p>"


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise ImportError("audit_onnx needs the onnx package: pip install 'pdbviz[export]'") from None
    return onnx, numpy_helper


def audit_onnx(path: str | os.PathLike) -> OnnxAuditReport:
    """Count the distinct values of every weight an ONNX file multiplies, against the bits the graph declares.

    A weight is an initializer that reaches a ``Conv``, ``ConvTranspose``,
    ``Gemm``, ``MatMul`` or ``Gather`` (an embedding) directly or through
    casts, reshapes, slices, clips, scalings and one quantizer node
    (``DequantizeLinear``, QONNX's ``Quant``/``BipolarQuant``), or any stored
    tensor that a quantizer node reads, wherever its output goes. The values counted are the stored
    ones (integer codes, or floats), which with one scale per tensor are as
    many as the values the multiplication uses.

    Example::

        export_model(pdbviz.quantize(model, "8-4-2-1"), "m.qonnx.onnx")
        audit_onnx("m.qonnx.onnx").summary           # "5 weights, 5 quantized, 0 lies"
    """
    onnx, numpy_helper = _onnx()
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file not found: {path}")
    graph = onnx.load(str(path)).graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    rows, seen = [], set()
    for node in graph.node:
        for pos in _WEIGHT_INPUTS.get(node.op_type, ()):
            if pos >= len(node.input):
                continue
            root, quant = _trace(node.input[pos], inits, producer)
            if root is None or (root, node.name) in seen:
                continue
            seen.add((root, node.name))
            values = np.asarray(numpy_helper.to_array(inits[root]))
            if not (np.issubdtype(values.dtype, np.floating) or quant is not None):
                continue  # integer indices, shapes
            bits, declared = _declared_bits(quant, inits, numpy_helper)
            n = int(np.unique(values).size)
            allowed = None if bits >= 32 else 2**bits
            rows.append((root, node.name, node.op_type, declared, bits, n, allowed,
                         "LIE" if allowed is not None and n > allowed else "ok"))
    audited = {r[0] for r in rows}
    for node in graph.node:  # every quantizer node on a stored tensor, wherever the graph then uses it
        if node.op_type not in _QUANT:
            continue
        root, _ = _trace(node.input[0], inits, producer)
        if root is None or root in audited:
            continue
        audited.add(root)
        values = np.asarray(numpy_helper.to_array(inits[root]))
        bits, declared = _declared_bits(node, inits, numpy_helper)
        n = int(np.unique(values).size)
        allowed = None if bits >= 32 else 2**bits
        rows.append((root, node.name, node.op_type, declared, bits, n, allowed,
                     "LIE" if allowed is not None and n > allowed else "ok"))
    table = pd.DataFrame(rows, columns=ONNX_COLUMNS)
    table["allowed"] = table["allowed"].astype("Int64")
    return OnnxAuditReport(table, path)


def _trace(name: str, inits: dict, producer: dict):
    """The initializer behind ``name`` and the quantizer node met on the way, or (None, None)."""
    quant = None
    for _ in range(16):
        if name in inits:
            return name, quant
        node = producer.get(name)
        if node is None:
            return None, None
        if node.op_type in _QUANT:
            if quant is not None:
                return None, None
            quant = node
        elif node.op_type not in _PASS:
            return None, None
        name = node.input[0]
    return None, None


def _declared_bits(quant, inits: dict, numpy_helper) -> tuple[int, str]:
    if quant is None:
        return 32, "float initializer"
    if quant.op_type == "BipolarQuant":
        return 1, "BipolarQuant"
    if quant.op_type in ("Quant", "IntQuant") and len(quant.input) > 3 and quant.input[3] in inits:
        return int(float(numpy_helper.to_array(inits[quant.input[3]]))), quant.op_type
    source = inits.get(quant.input[0])
    if source is not None:
        from onnx import TensorProto

        bits = {TensorProto.INT4: 4, TensorProto.UINT4: 4, TensorProto.INT8: 8, TensorProto.UINT8: 8,
                TensorProto.INT16: 16, TensorProto.UINT16: 16}.get(source.data_type, 32)
        return bits, f"{quant.op_type} of {TensorProto.DataType.Name(source.data_type).lower()}"
    return 32, quant.op_type
