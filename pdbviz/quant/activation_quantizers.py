"""The built-in input (activation) quantizers: DoReFa-Net and PACT.

A layer's input bits quantize the tensor it multiplies by its weight; the
network's own input is never quantized. Each quantizer is a registered class
(``registry``) that states its levels and its integer grid.
"""

from __future__ import annotations

import torch
from torch import nn

from .grid import IntegerGrid
from .registry import EPS, FULL_PRECISION, ActivationQuantizer, check_bits, register_activation_quantizer
from .ste import clipped_round_ste


def quantize_activation(x: torch.Tensor, bits: int | None) -> torch.Tensor:
    """DoReFa activation quantizer: ``a_q = Q_k(clip(x, 0, 1))``.

    ``2^k`` levels in [0, 1]. The gradient is the identity where
    ``0 <= x <= 1`` and zero outside.

    Example:
        >>> quantize_activation(torch.tensor([-0.5, 0.2, 0.7, 3.0]), 1).tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    bits = check_bits(bits)
    if bits == FULL_PRECISION:
        return x
    n = float(2**bits - 1)
    if not (x.requires_grad and torch.is_grad_enabled()):
        return x.clamp(0.0, 1.0).mul_(n).round_().div_(n)  # inference: one buffer, no autograd node
    return clipped_round_ste(x, n)


@register_activation_quantizer
class DoReFaActivation(ActivationQuantizer):
    """DoReFa inputs (``quantize_activation``): ``Q_k(clip(x, 0, 1))``, 2^k levels in [0, 1].

    Grid: ``c / n``, ``c = 0..n``, ``n = 2^k - 1``: the unsigned k-bit range with step ``1 / n``.
    """

    name, label = "dorefa", "DoReFa"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_activation(x, self.bits)

    def integer_grid(self) -> IntegerGrid:
        """Unsigned k-bit codes with step ``1 / (2^k - 1)``.

        Example:
            >>> DoReFaActivation(2).integer_grid().scale
            0.3333333333333333
        """
        return IntegerGrid(1.0 / (2**self.bits - 1), 0.0, self.bits, signed=False)


@register_activation_quantizer
class PACTActivation(ActivationQuantizer):
    """PACT inputs (Choi et al. 2018, arXiv 1805.06085): a learned clip ``a``, then ``k`` bits on ``[0, a]``.

    ``y = min(max(x, 0), a)``, ``x_q = a round(y (2^k - 1) / a) / (2^k - 1)``,
    with ``a`` initialised at 6. The quantization is straight-through as a
    whole (``x_q`` counts as ``y`` backward), so the gradient of ``a`` is
    PACT's: 1 where ``x >= a``, else 0.

    Grid: ``a c / n`` on ``[0, a]``: the unsigned k-bit range with step ``a / n``.
    """

    name, label = "pact", "PACT"

    def __init__(self, bits: int):
        super().__init__(bits)
        self.alpha = nn.Parameter(torch.tensor(6.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha.abs().clamp_min(EPS)
        n = float(2**self.bits - 1)
        y = torch.minimum(x.clamp(min=0), a)
        # y + (q - y) is q exactly: q is within half a step of y, so the difference is exact (Sterbenz)
        return y + (torch.round(y * (n / a)) * (a / n) - y).detach()

    def integer_grid(self) -> IntegerGrid:
        """Unsigned k-bit codes with step ``a / (2^k - 1)`` for the learned clip ``a``."""
        return IntegerGrid(float(self.alpha.detach().abs()) / (2**self.bits - 1), 0.0, self.bits, signed=False)
