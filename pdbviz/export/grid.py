"""The integer form of each quantizer: the grid its values lie on, as export formats describe it.

Every export format writes a quantized tensor as integers plus a few numbers
that turn them back into values, the affine form of QONNX's ``Quant`` and of
ONNX's ``DequantizeLinear``::

    value = (code - zero_point) * scale,   code an integer in [lo, hi]

where ``[lo, hi]`` follows from ``bits``, ``signed`` and ``narrow`` (QONNX's
convention: signed 4-bit is [-8, 7], narrow [-7, 7]; unsigned 4-bit [0, 15]).
``IntegerGrid`` is that description; ``bipolar`` grids hold ``-scale`` and
``+scale`` only (QONNX's ``BipolarQuant``).

One small function per weight mode (``register_integer_form``) and per input
mode (``register_activation_form``) gives the grid of a quantized tensor.
The quantization core knows nothing of this module; a new mode registered
there needs one function here before it can be exported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..quant.quantizers import ActivationQuantizer, WeightQuantizer, symmetric_step

EXTRA = 'pip install "pdbviz[export]"'


class ExportError(ValueError):
    """A model, a layer or a mode that an export format cannot express."""


def require(module: str):
    """Import an optional dependency of the export formats, or raise ImportError naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"exporting needs {module.split('.')[0]}, which is not installed ({err}); "
                          f"install the export extra: {EXTRA}") from None


@dataclass(frozen=True)
class IntegerGrid:
    """Integers and how they map to values: ``value = (code - zero_point) * scale``.

    Attributes:
        scale: the step between neighbouring values.
        zero_point: the code of the value 0; it may be a half-integer, for
            grids without a zero (DoReFa's weights).
        bits: the bit-width of the codes.
        signed: codes in ``[-2^(bits-1), 2^(bits-1) - 1]`` (else ``[0, 2^bits - 1]``).
        narrow: drop the most negative code of a signed range (the largest of an unsigned one).
        bipolar: the codes are -1 and +1 (one bit: ``BipolarQuant``).

    Example:
        >>> g = IntegerGrid(scale=2 / 3, zero_point=-0.5, bits=2, signed=True)   # DoReFa, 2 bits
        >>> g.int_range, g.values(np.array([-2, -1, 0, 1])).round(4).tolist()
        ((-2, 1), [-1.0, -0.3333, 0.3333, 1.0])
        >>> g.codes(np.array([1.0, -1 / 3])).tolist()
        [1, -1]
    """

    scale: float
    zero_point: float
    bits: int
    signed: bool
    narrow: bool = False
    bipolar: bool = False

    def __post_init__(self):
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be a positive finite number, got {self.scale!r}")
        if not math.isfinite(self.zero_point) or (2 * self.zero_point) % 1:
            raise ValueError(f"zero_point must be an integer or a half-integer, got {self.zero_point!r}")
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 16:
            raise ValueError(f"bits must be an integer in 1..16, got {self.bits!r}")
        if self.bipolar and (self.bits != 1 or self.zero_point != 0):
            raise ValueError("a bipolar grid has bits=1 and zero_point=0")

    @property
    def int_range(self) -> tuple[int, int]:
        """The smallest and largest code."""
        if self.bipolar:
            return -1, 1
        if self.signed:
            return -(2 ** (self.bits - 1)) + int(self.narrow), 2 ** (self.bits - 1) - 1
        return 0, 2**self.bits - 1 - int(self.narrow)

    @property
    def offset(self) -> float:
        """``-zero_point * scale``: what every value holds beyond ``code * scale``."""
        return -self.zero_point * self.scale

    def codes(self, values: np.ndarray | torch.Tensor) -> np.ndarray:
        """The integer codes (int32) of ``values``; ExportError if a value is not on the grid."""
        v = np.asarray(values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values, np.float64)
        if self.bipolar:
            q = np.where(v >= 0, 1, -1)
        else:
            q = np.round(v / self.scale + self.zero_point)
        lo, hi = self.int_range
        back = self.values(q)
        if q.size and (q.min() < lo or q.max() > hi or
                       not np.allclose(back, v, rtol=0, atol=1e-3 * self.scale)):
            raise ExportError(f"values are not on the grid {self}: codes in [{q.min()}, {q.max()}], "
                              f"worst error {np.abs(back - v).max():.3g}")
        return q.astype(np.int32)

    def values(self, codes: np.ndarray) -> np.ndarray:
        """The values (float64) of integer ``codes``."""
        return (np.asarray(codes, np.float64) - self.zero_point) * self.scale


WeightForm = Callable[[WeightQuantizer, torch.Tensor, torch.Tensor], IntegerGrid]
#: weight mode -> function of (quantizer, quantized weight, float weight) giving its grid
INTEGER_FORMS: dict[str, WeightForm] = {}
ActivationForm = Callable[[ActivationQuantizer], IntegerGrid]
#: input mode -> function of the input quantizer (its bits and learned state) giving its grid
ACTIVATION_FORMS: dict[str, ActivationForm] = {}


def register_integer_form(mode: str) -> Callable[[WeightForm], WeightForm]:
    """Decorator: the function giving the integer grid of weight mode ``mode``.

    The function takes the quantizer (its ``bits`` and any learned state, such
    as a step size), the quantized weight and the float weight it came from,
    and returns an ``IntegerGrid`` on which every value of the weight lies.

    Example::

        @register_integer_form("lsq")
        def _lsq(quantizer, wq, w):
            return IntegerGrid(float(quantizer.step), 0, quantizer.bits, signed=True)
    """
    if not isinstance(mode, str) or not mode:
        raise TypeError(f"mode must be a non-empty string, got {mode!r}")

    def deco(fn: WeightForm) -> WeightForm:
        INTEGER_FORMS[mode] = fn
        return fn

    return deco


def register_activation_form(mode: str) -> Callable[[ActivationForm], ActivationForm]:
    """Decorator: the function of the input quantizer giving the integer grid of input mode ``mode``.

    Example::

        @register_activation_form("pact")
        def _pact(quantizer):
            return IntegerGrid(float(quantizer.alpha) / (2**quantizer.bits - 1), 0, quantizer.bits, signed=False)
    """
    if not isinstance(mode, str) or not mode:
        raise TypeError(f"mode must be a non-empty string, got {mode!r}")

    def deco(fn):
        ACTIVATION_FORMS[mode] = fn
        return fn

    return deco


def weight_grid(quantizer: WeightQuantizer, wq: torch.Tensor, w: torch.Tensor | None = None) -> IntegerGrid:
    """The integer grid of the weight ``wq`` that ``quantizer`` produced from the float weight ``w``.

    Example:
        >>> from pdbviz.quant.quantizers import SymmetricWeight
        >>> w = torch.tensor([-1.0, 0.1, 1.0])
        >>> weight_grid(SymmetricWeight(2), SymmetricWeight(2)(w), w)
        IntegerGrid(scale=1.0, zero_point=0.0, bits=2, signed=True, narrow=True, bipolar=False)
    """
    form = INTEGER_FORMS.get(quantizer.name)
    if form is None:
        raise ExportError(f"weight mode {quantizer.name!r} has no integer form for export (known: "
                          f"{sorted(INTEGER_FORMS)}); add one with pdbviz.export.register_integer_form")
    grid = form(quantizer, wq, wq if w is None else w)
    grid.codes(wq)  # every value must lie on the grid
    return grid


def activation_grid(quantizer: ActivationQuantizer) -> IntegerGrid:
    """The integer grid of an input quantizer (its mode, bits and learned state).

    Example:
        >>> from pdbviz.quant import activation_quantizer
        >>> activation_grid(activation_quantizer("dorefa")(2))
        IntegerGrid(scale=0.3333333333333333, zero_point=0.0, bits=2, signed=False, narrow=False, bipolar=False)
    """
    form = ACTIVATION_FORMS.get(quantizer.name)
    if form is None:
        raise ExportError(f"input mode {quantizer.name!r} has no integer form for export (known: "
                          f"{sorted(ACTIVATION_FORMS)}); add one with pdbviz.export.register_activation_form")
    return form(quantizer)


@register_integer_form("dorefa")
def _dorefa(quantizer: WeightQuantizer, wq: torch.Tensor, w: torch.Tensor) -> IntegerGrid:
    # k >= 2: values a (2c - n) / n, c = 0..n, n = 2^k - 1, a = max|w_q|: no zero among them. With scale 2a/n and
    # zero-point -1/2 the codes are c - 2^(k-1), exactly the signed k-bit range. k = 1: +-mean|w|, bipolar.
    k, a = quantizer.bits, float(wq.detach().abs().max()) or 1.0
    if k == 1:
        return IntegerGrid(a, 0.0, 1, signed=True, bipolar=True)
    return IntegerGrid(2.0 * a / (2**k - 1), -0.5, k, signed=True)


@register_integer_form("symmetric")
def _symmetric(quantizer: WeightQuantizer, wq: torch.Tensor, w: torch.Tensor) -> IntegerGrid:
    # k = 1: +-mean|w|, bipolar. k >= 2: values s q, q in [-m, m], m = 2^(k-1) - 1: the narrow signed k-bit range.
    if quantizer.bits == 1:
        return IntegerGrid(float(wq.detach().abs().max()) or 1.0, 0.0, 1, signed=True, bipolar=True)
    return IntegerGrid(float(symmetric_step(w.detach().float(), quantizer.bits)), 0.0, quantizer.bits, signed=True,
                       narrow=True)


@register_integer_form("lsq")
def _lsq(quantizer: WeightQuantizer, wq: torch.Tensor, w: torch.Tensor) -> IntegerGrid:
    # values s q, q in [-2^(k-1), 2^(k-1) - 1]: the signed k-bit range with the learned step s.
    return IntegerGrid(float(quantizer.step.detach().abs()), 0.0, quantizer.bits, signed=True)


@register_activation_form("dorefa")
def _dorefa_input(quantizer: ActivationQuantizer) -> IntegerGrid:
    # Q_k(clip(x, 0, 1)): c / n, c = 0..n: the unsigned k-bit range.
    return IntegerGrid(1.0 / (2**quantizer.bits - 1), 0.0, quantizer.bits, signed=False)


@register_activation_form("pact")
def _pact_input(quantizer: ActivationQuantizer) -> IntegerGrid:
    # a c / n on [0, a] with the learned clip a: the unsigned k-bit range with step a / n.
    return IntegerGrid(float(quantizer.alpha.detach().abs()) / (2**quantizer.bits - 1), 0.0, quantizer.bits,
                       signed=False)
