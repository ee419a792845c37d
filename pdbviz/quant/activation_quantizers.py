"""The built-in input (activation) quantizers: DoReFa-Net and PACT.

A layer's input bits quantize the tensor it multiplies by its weight; the
network's own input is never quantized. Each quantizer is a registered class
(``registry``) that states its levels and its integer grid.

Each quantizer is one autograd node: the forward computes the clip, the scale
and the rounding on one fresh buffer (the same floating-point operations as
the step-by-step formula, so the values are identical, ties to even as
``torch.round``), and the backward is one masking pass over the gradient. The
node keeps its input for the backward instead of a mask: a ReLU before the
layer keeps the same tensor anyway, and masking by comparison with the input
is a single fused kernel, where a boolean mask costs a comparison forward and
a type-promoting product backward.
"""

from __future__ import annotations

import torch
from torch import nn

from .grid import IntegerGrid
from .registry import EPS, FULL_PRECISION, ActivationQuantizer, check_bits, register_activation_quantizer


def _outside(dtype: torch.dtype) -> tuple[float, float]:
    """The largest value below 0 and the smallest above 1 in ``dtype``: ``lo < x < hi`` is ``0 <= x <= 1``.

    From ``torch.finfo``, without a tensor (so that a compiled backward needs no value from the device): the
    smallest subnormal is ``tiny * eps`` and the next value above 1 is ``1 + eps``.

    Example:
        >>> lo, hi = _outside(torch.float32)
        >>> lo == float(torch.nextafter(torch.tensor(0.0), torch.tensor(-1.0))), hi == float(torch.nextafter(
        ...     torch.tensor(1.0), torch.tensor(2.0)))
        (True, True)
    """
    info = torch.finfo(dtype)
    return -info.tiny * info.eps, 1.0 + info.eps


class _DoReFaInput(torch.autograd.Function):
    """``round(clip(x, 0, 1) n) / n`` forward; backward passes the gradient where ``0 <= x <= 1`` (ends included)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, n: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return x.clamp(0.0, 1.0).mul_(n).round_().div_(n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        lo, hi = _outside(x.dtype)  # hardtanh's backward masks the open interval (lo, hi): [0, 1] exactly
        return torch.ops.aten.hardtanh_backward(grad, x, lo, hi), None


class _PACTInput(torch.autograd.Function):
    """PACT's ``a round(min(max(x, 0), a) n / a) / n`` forward (``a`` a 0-dim tensor); straight-through backward:
    the gradient of ``x`` where ``0 <= x < a``, of ``a`` summed where ``x >= a``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, a: torch.Tensor, n: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, a)
        y = x.clamp(min=0.0)
        return torch.minimum(y, a, out=y).mul_(n / a).round_().mul_(a / n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, a = ctx.saved_tensors
        above = x >= a
        grad_a = torch.where(above, grad, 0).sum() if ctx.needs_input_grad[1] else None
        grad_x = torch.where(above.logical_or_(x < 0), 0, grad) if ctx.needs_input_grad[0] else None
        return grad_x, grad_a, None


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
    return _DoReFaInput.apply(x, n)


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
    PACT's: 1 where ``x >= a``, else 0; that of ``x`` is 1 where ``0 <= x < a``,
    else 0 (at ``x = a`` the whole gradient goes to ``a``).

    Grid: ``a c / n`` on ``[0, a]``: the unsigned k-bit range with step ``a / n``.
    """

    name, label = "pact", "PACT"

    def __init__(self, bits: int):
        super().__init__(bits)
        self.alpha = nn.Parameter(torch.tensor(6.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha.abs().clamp_min(EPS)
        n = float(2**self.bits - 1)
        if not (torch.is_grad_enabled() and (x.requires_grad or a.requires_grad)):
            y = x.clamp(min=0.0)
            return torch.minimum(y, a, out=y).mul_(n / a).round_().mul_(a / n)
        # the straight-through y + (q - y).detach() is q exactly: q is within half a step of y, so the
        # difference is exact (Sterbenz); one node computes q and PACT's gradients
        return _PACTInput.apply(x, a, n)

    def integer_grid(self) -> IntegerGrid:
        """Unsigned k-bit codes with step ``a / (2^k - 1)`` for the learned clip ``a``."""
        return IntegerGrid(float(self.alpha.detach().abs()) / (2**self.bits - 1), 0.0, self.bits, signed=False)
