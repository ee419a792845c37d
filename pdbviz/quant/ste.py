"""Straight-through estimators (STE) as autograd Functions.

Each Function computes a non-differentiable forward pass (rounding, sign,
clipped rounding) and replaces its gradient with the identity, as in
Bengio et al. (2013), "Estimating or propagating gradients through stochastic
neurons", and DoReFa-Net (Zhou et al., 2016, arXiv 1606.06160).
"""

from __future__ import annotations

import torch


class RoundSTE(torch.autograd.Function):
    """``round(x * n) / n`` forward; identity gradient backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, n: float) -> torch.Tensor:  # type: ignore[override]
        return torch.round(x * n).div_(n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


class ClippedRoundSTE(torch.autograd.Function):
    """``round(clip(x, 0, 1) * n) / n`` forward.

    Backward passes the gradient where ``0 <= x <= 1`` and zeroes it outside,
    the gradient of the clip itself (DoReFa activations).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, n: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.round(x.clamp(0.0, 1.0) * n).div_(n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (x,) = ctx.saved_tensors
        inside = (x >= 0) & (x <= 1)
        return grad * inside, None


class ScaledSignSTE(torch.autograd.Function):
    """``mean(|w|) * sign(w)`` forward, with ``sign(0) = +1``; identity backward.

    The gradient treats the whole binarisation as the identity, as DoReFa-Net
    does for 1-bit weights.
    """

    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        scale = w.abs().mean()
        return torch.where(w >= 0, scale, -scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad


round_ste = RoundSTE.apply
clipped_round_ste = ClippedRoundSTE.apply
scaled_sign_ste = ScaledSignSTE.apply
