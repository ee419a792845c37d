"""The export formats: one registration each (name, file suffix, description, writer).

``export_model``, the command line's ``--to`` choices and the default file
names read this registry; a new format is one ``register_format`` call next
to its writer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .._io import atomic_write


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: what ``export_model(to=...)`` and ``pdbviz export --to`` take.
        suffix: the end of its default file name.
        description: one line for people.
        writer: ``writer(model, path, example_input)`` writes the file and returns what it wrote.
    """

    name: str
    suffix: str
    description: str
    writer: Callable[[nn.Module, Path, Any], Any]


_FORMATS: dict[str, ExportFormat] = {}


def register_format(name: str, suffix: str, description: str) -> Callable:
    """Decorator: register ``writer(model, path, example_input)`` as the export format ``name``.

    Example::

        @register_format("mine", ".mine.bin", "my runtime's file")
        def _write_mine(model, path, example_input):
            ...
    """
    for label, value in (("name", name), ("suffix", suffix), ("description", description)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"{label} must be a non-empty string, got {value!r}")

    def deco(writer: Callable) -> Callable:
        _FORMATS[name] = ExportFormat(name, suffix, description, writer)
        return writer

    return deco


def formats() -> tuple[ExportFormat, ...]:
    """The registered export formats, in registration order.

    Example:
        >>> [(f.name, f.suffix) for f in formats()]
        [('qonnx', '.qonnx.onnx'), ('onnx', '.onnx'), ('torchao', '.torchao.json')]
    """
    return tuple(_FORMATS.values())


def get_format(name: str) -> ExportFormat:
    """The format ``name``; ValueError naming the registered ones otherwise."""
    try:
        return _FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(f"to must be one of {tuple(_FORMATS)}, got {name!r}") from None


@register_format("qonnx", ".qonnx.onnx", "QONNX: Quant/BipolarQuant nodes at the schedule's bit-widths "
                                         "(FINN, hls4ml; batch 1)")
def _qonnx(model, path, example_input):
    from .writers import to_qonnx

    return to_qonnx(model, path, example_input)


@register_format("onnx", ".onnx", "ONNX with int4/int8 weights (QDQ) for onnxruntime; dynamic batch and sequence")
def _onnx(model, path, example_input):
    from .writers import to_onnx

    return to_onnx(model, path, example_input)


@register_format("torchao", ".torchao.json", "a torchao FqnToConfig (JSON) at the schedule's bit-widths")
def _torchao(model, path, example_input):
    from .torchao_config import torchao_config

    result = torchao_config(model)
    with atomic_write(Path(path) if isinstance(path, (str, os.PathLike)) else path, "w", encoding="utf-8") as fh:
        fh.write(result.to_json())
    return result
