"""``BitSpec``: the bit-widths and quantizers of one weight and of its input, validated once."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .registry import FULL_PRECISION, activation_quantizer, check_bits, weight_quantizer


@dataclass(frozen=True)
class BitSpec:
    """Bit-widths of one weight and of its input.

    Args:
        w_bits: weight bits, 1..8 or 32 (``None`` = 32, full precision).
        a_bits: bits of the weight's *input* (its layer's input activations),
            1..8 or 32 (``None`` = 32). The network's own input is never
            quantized: ``quantize`` keeps the first layer's input at full
            precision whatever this says.
        weight_mode: a registered weight quantizer (``WEIGHT_QUANTIZERS``):
            ``"dorefa"`` (2^k levels), ``"symmetric"`` (binary at 1 bit, TWN
            ternary at 2, 2^k - 1 levels with an exact zero above)...; its
            ``min_bits`` bounds ``w_bits``.
        act_mode: a registered input quantizer (``ACTIVATION_QUANTIZERS``).

    Example:
        >>> BitSpec(4, 8)
        BitSpec(w_bits=4, a_bits=8, weight_mode='dorefa', act_mode='dorefa')
    """

    w_bits: int = FULL_PRECISION
    a_bits: int = FULL_PRECISION
    weight_mode: str = "dorefa"
    act_mode: str = "dorefa"

    def __post_init__(self) -> None:
        w_cls = weight_quantizer(self.weight_mode)
        a_cls = activation_quantizer(self.act_mode)
        object.__setattr__(self, "w_bits", check_bits(self.w_bits, "w_bits", minimum=w_cls.min_bits))
        object.__setattr__(self, "a_bits", check_bits(self.a_bits, "a_bits", minimum=a_cls.min_bits))

    @property
    def is_float(self) -> bool:
        """True when both weights and inputs are at full precision."""
        return self.w_bits == FULL_PRECISION and self.a_bits == FULL_PRECISION

    def to_dict(self) -> dict[str, Any]:
        """The four fields as a JSON-ready dict.

        Example:
            >>> BitSpec(2, weight_mode="symmetric").to_dict()["weight_mode"]
            'symmetric'
        """
        return asdict(self)
