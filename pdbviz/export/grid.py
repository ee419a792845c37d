"""The integer grid of each quantized tensor, as the export formats read it from its quantizer class.

Every export format writes a quantized tensor as integers plus a few numbers
that turn them back into values, ``value = (code - zero_point) * scale``
(``pdbviz.quant.IntegerGrid``). The quantizer class states that grid once
(``WeightQuantizer.integer_grid``, ``ActivationQuantizer.integer_grid``), the
same grid whose codes packed files store, so a new registered quantizer
exports without an edit here. This module keeps the export formats' error,
the import of their optional libraries, and the two functions they call.
"""

from __future__ import annotations

import torch

from ..quant.grid import IntegerGrid, OffGridError
from ..quant.registry import ActivationQuantizer, WeightQuantizer

EXTRA = 'pip install "pdbviz[export]"'


class ExportError(ValueError):
    """A model, a layer or a mode that an export format cannot express."""


def require(module: str):
    """Import an optional dependency of the export formats, or raise ImportError naming the extra.

    Example:
        >>> require("json").dumps(1)
        '1'
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"exporting needs {module.split('.')[0]}, which is not installed ({err}); "
                          f"install the export extra: {EXTRA}") from None


def weight_grid(quantizer: WeightQuantizer, wq: torch.Tensor, w: torch.Tensor | None = None) -> IntegerGrid:
    """The integer grid of the weight ``wq`` that ``quantizer`` produced from the float weight ``w``.

    ExportError when a value of ``wq`` is not on it, or the quantizer states no grid.

    Example:
        >>> from pdbviz.quant.quantizers import SymmetricWeight
        >>> w = torch.tensor([-1.0, 0.1, 1.0])
        >>> weight_grid(SymmetricWeight(2), SymmetricWeight(2)(w), w)
        IntegerGrid(scale=1.0, zero_point=0.0, bits=2, signed=True, narrow=True, bipolar=False)
    """
    name = getattr(quantizer, "name", None)
    if not callable(getattr(quantizer, "integer_grid", None)):
        raise ExportError(f"weight mode {name!r} has no integer grid for export: define tensor_scale and grid on "
                          "its WeightQuantizer class")
    try:
        grid = quantizer.integer_grid(wq, w)
        grid.codes(wq)  # every value must lie on the grid
    except OffGridError as err:
        raise ExportError(f"weight mode {name!r}: {err}") from None
    except NotImplementedError:
        raise ExportError(f"weight mode {name!r} has no integer grid for export: define tensor_scale and grid on "
                          "its WeightQuantizer class") from None
    return grid


def activation_grid(quantizer: ActivationQuantizer) -> IntegerGrid:
    """The integer grid of an input quantizer (its mode, bits and learned state).

    Example:
        >>> from pdbviz.quant import activation_quantizer
        >>> activation_grid(activation_quantizer("dorefa")(2))
        IntegerGrid(scale=0.3333333333333333, zero_point=0.0, bits=2, signed=False, narrow=False, bipolar=False)
    """
    name = getattr(quantizer, "name", None)
    missing = ExportError(f"input mode {name!r} has no integer grid for export: define integer_grid on its "
                          "ActivationQuantizer class")
    if not callable(getattr(quantizer, "integer_grid", None)):
        raise missing
    try:
        return quantizer.integer_grid()
    except NotImplementedError:
        raise missing from None
