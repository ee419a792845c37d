"""Proof of a quantized model's report: what each weight really computed with (``audit``), in memory, in a
packed file and in an exported ONNX file."""

from .command import audit_command
from .model import AUDIT_COLUMNS, VERDICTS, AuditReport, audit, audit_packed
from .onnx_file import OnnxAuditReport, audit_onnx

__all__ = ["AUDIT_COLUMNS", "VERDICTS", "AuditReport", "OnnxAuditReport", "audit", "audit_command", "audit_onnx",
           "audit_packed"]
