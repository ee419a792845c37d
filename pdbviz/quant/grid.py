"""The integer grid of a quantized tensor: integer codes and the affine map back to values.

Every quantizer's values lie on a grid of this form, the affine form of
QONNX's ``Quant`` and of ONNX's ``DequantizeLinear``::

    value = (code - zero_point) * scale,   code an integer in [lo, hi]

where ``[lo, hi]`` follows from ``bits``, ``signed`` and ``narrow`` (QONNX's
convention: signed 4-bit is [-8, 7], narrow [-7, 7]; unsigned 4-bit [0, 15]).
``bipolar`` grids hold ``-scale`` and ``+scale`` only (QONNX's
``BipolarQuant``). A quantizer class states its grid once
(``WeightQuantizer.grid``, ``ActivationQuantizer.integer_grid``); packed files
store its codes, and every export format writes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


class OffGridError(ValueError):
    """Values that do not lie on the integer grid they are said to lie on."""


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
        >>> g.unsigned_codes(np.array([1.0, -1 / 3])).tolist()
        [3, 1]
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
        """The integer codes (int32) of ``values``; OffGridError if a value is not on the grid."""
        v = np.asarray(values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values, np.float64)
        if self.bipolar:
            q = np.where(v >= 0, 1, -1)
        else:
            q = np.round(v / self.scale + self.zero_point)
        lo, hi = self.int_range
        back = self.values(q)
        if q.size and (q.min() < lo or q.max() > hi or
                       not np.allclose(back, v, rtol=0, atol=1e-3 * self.scale)):
            raise OffGridError(f"values are not on the grid {self}: codes in [{q.min()}, {q.max()}], "
                               f"worst error {np.abs(back - v).max():.3g}")
        return q.astype(np.int32)

    def values(self, codes: np.ndarray) -> np.ndarray:
        """The values (float64) of integer ``codes``."""
        return (np.asarray(codes, np.float64) - self.zero_point) * self.scale

    def unsigned_codes(self, values: np.ndarray | torch.Tensor) -> np.ndarray:
        """The codes of ``values`` shifted to ``0 .. 2^bits - 1`` (int32), as a packed file stores them.

        A bipolar grid's codes -1 and +1 become 0 and 1; any other grid's
        ``code`` becomes ``code - lo``.
        """
        q = self.codes(values)
        return (q > 0).astype(np.int32) if self.bipolar else q - self.int_range[0]

    def signed_codes(self, unsigned: np.ndarray) -> np.ndarray:
        """Inverse of ``unsigned_codes``: the grid's codes (int32) of stored codes."""
        u = np.asarray(unsigned, np.int32)
        return np.where(u > 0, 1, -1).astype(np.int32) if self.bipolar else u + self.int_range[0]
