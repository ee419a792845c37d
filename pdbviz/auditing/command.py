"""The work of ``pdbviz audit``: quantize or load a model, audit it (and an ONNX file), return the text to print."""

from __future__ import annotations

import os

from torch import nn

from .model import audit
from .onnx_file import audit_onnx


def audit_command(model: nn.Module, example_input, schedule: str | None = None,
                  packed: str | os.PathLike | None = None, onnx_path: str | os.PathLike | None = None) -> str:
    """Audit ``model`` as quantized by ``schedule`` (or as loaded from ``packed``), and the ONNX file; the report.

    Args:
        model: the float model (its architecture).
        example_input: one batch it accepts.
        schedule: a schedule string, e.g. ``"8-4-2-1/8"``; ignored when ``packed`` is given.
        packed: a file written by ``save_packed``: the model it rebuilds is audited.
        onnx_path: an exported ONNX file whose stored weights are audited too.

    Returns:
        The table(s) and summary line(s), as text (the command prints it; it exits 1 when something lies).

    Example:
        >>> import torch
        >>> text = audit_command(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), torch.randn(3, 4), "2-1")
        >>> text.splitlines()[-1]
        'audit: 2 weights, 4 uses, 0 lies'
    """
    from ..quant.convert import quantize
    from ..quant.packing import load_packed

    if packed is not None:
        target, what = load_packed(packed, model), f"packed file {packed}"
    elif schedule is not None:
        target, what = quantize(model, schedule, example_input=example_input), f"schedule {schedule}"
    else:
        target, what = model, "the model as given"
    report = audit(target, example_input)
    lines = [f"{what}:", *report.lines()[:-1]]
    if onnx_path is not None:
        onnx_report = audit_onnx(onnx_path)
        lines += [f"ONNX file {onnx_path}:", *onnx_report.lines()[:-1], f"onnx: {onnx_report.summary}"]
    lines.append(f"audit: {report.summary}")
    return "\n".join(lines)
