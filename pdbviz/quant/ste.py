"""Straight-through estimators (STE) as autograd Functions.

Each Function computes a non-differentiable forward pass (rounding, sign,
clipped rounding) and replaces its gradient with the identity, as in
Bengio et al. (2013), "Estimating or propagating gradients through stochastic
neurons", and DoReFa-Net (Zhou et al., 2016, arXiv 1606.06160).

The backward passes use no in-place indexing and no data-dependent Python
branches, so that ``torch.compile`` can trace a training step through them.

Conventions, the same in every Function here:

- **ties**: ``round`` is ``torch.round``, round half to even
  (``round(0.5) = 0``, ``round(1.5) = 2``); ``sign(0) = +1``; the arg-max of
  ``|tanh(w)|`` in ``DoReFaWeightSTE`` is the first largest element in
  row-major order (``argmax``'s rule), and only it receives the gradient of
  the maximum.
- **clip boundaries**: the clip is closed, ``lo <= x <= hi`` counts as
  inside, so the gradient passes at ``x = lo`` and ``x = hi`` exactly
  (``clamp``'s own subgradient there is 1) and is zero strictly outside.
- **rounding**: straight-through (identity) wherever the gradient passes.

``torch.compile`` gives the same gradients as eager (within float32
rounding; ``tests/quant/test_compile.py`` checks every weight and input mode
against eager and a float64 run). Where a training step's gradient changes by
more than that between the two, the cause is upstream of these Functions: a
compiled kernel's float32 result differs from eager's by rounding (a
convolution's sum in another order), and a discrete decision downstream
(a max-pool's arg-max among near-equal values, ``ReLU`` at 0, a rounding at
exactly half a step) goes the other way on inputs with few distinct values;
each of those is a valid subgradient.
"""

from __future__ import annotations

import torch


class RoundSTE(torch.autograd.Function):
    """``round(x * n) / n`` forward (ties to even); identity gradient backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, n: float) -> torch.Tensor:  # type: ignore[override]
        return torch.round(x * n).div_(n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


class ClippedRoundSTE(torch.autograd.Function):
    """``round(clip(x, 0, 1) * n) / n`` forward (ties to even).

    Backward passes the gradient where ``0 <= x <= 1`` (both ends included)
    and zeroes it outside, the gradient of the clip itself (DoReFa
    activations).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, n: float) -> torch.Tensor:  # type: ignore[override]
        clipped = x.clamp(0.0, 1.0)
        ctx.save_for_backward(clipped == x)  # a bool mask: 1 byte per element instead of the input
        return clipped.mul_(n).round_().div_(n)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (inside,) = ctx.saved_tensors
        return grad * inside, None


class ClipRoundSTE(torch.autograd.Function):
    """``round(clip(x, lo, hi))`` forward (integers, ties to even); backward passes the gradient where
    ``lo <= x <= hi`` (both ends included) and zeroes it outside.

    The symmetric and LSQ weight quantizers and the PACT input quantizer scale
    these integers by their step, so the quantized values are exactly
    ``code * step``, as a packed file stores them.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:  # type: ignore[override]
        clipped = x.clamp(lo, hi)
        ctx.save_for_backward(clipped == x)
        return clipped.round_()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None


class ScaledSignSTE(torch.autograd.Function):
    """``mean(|w|) * sign(w)`` forward, with ``sign(0) = +1``; identity backward.

    The gradient treats the whole binarisation as the identity, as DoReFa-Net
    does for 1-bit weights. The mean is summed in float64, so that it does
    not depend on the order in which a kernel adds.
    """

    @staticmethod
    def forward(ctx, w: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        scale = w.double().abs().mean().to(w.dtype)
        return torch.where(w >= 0, scale, -scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad


class DoReFaWeightSTE(torch.autograd.Function):
    """DoReFa k-bit weights (k >= 2) in one autograd node.

    Forward: ``t = tanh(w)``, ``m = max|t|``, ``w_q = 2 round(n (t / (2m) + 1/2)) / n - 1``
    (``n = 2^k - 1``), with the same floating-point operations as the
    step-by-step formula, so the values are identical. Backward: the exact
    gradient of ``2 (t / (2m) + 1/2) - 1`` (``round`` straight-through),
    including the path through ``m``, written out instead of recorded op by op:
    ``dL/dt = g / m``, plus ``-sum(g t) / m^2 * sign(t_j)`` at the arg-max
    ``j``; then ``dL/dw = dL/dt (1 - t^2)``. For an all-zero tensor (``m``
    below ``eps``) there is no scale to differentiate and the gradient passes
    straight through ``tanh``. Ties: ``round`` half to even; of several
    elements with the largest ``|t|``, the first (``argmax``) carries the
    gradient of ``m``.
    """

    @staticmethod
    def forward(ctx, w: torch.Tensor, n: float, eps: float) -> torch.Tensor:  # type: ignore[override]
        t = torch.tanh(w)
        flat = t.reshape(-1)
        j = flat.abs().argmax()
        peak = flat.gather(0, j.reshape(1)).abs().reshape(())  # a gather, not flat[j]: no host sync
        m = peak.clamp_min(eps)
        ctx.save_for_backward(t, m, j, peak)
        ctx.eps = eps
        return (t / (2 * m)).add_(0.5).mul_(n).round_().div_(n).mul_(2).sub_(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        t, m, j, peak = ctx.saved_tensors
        scaled = peak >= ctx.eps
        inv_m = torch.where(scaled, 1 / m, torch.ones_like(m))
        g_t = grad * inv_m
        g_m = torch.where(scaled, -(grad * t).sum() * inv_m * inv_m, torch.zeros_like(m))
        t_flat, index = t.reshape(-1), j.reshape(1)
        at_peak = torch.zeros_like(t_flat).scatter(0, index, g_m * torch.sign(t_flat.gather(0, index)))
        g_t = g_t + at_peak.reshape(t.shape)
        return g_t * (1 - t * t), None, None


class ScaleGrad(torch.autograd.Function):
    """``x`` forward, its value exactly; the gradient times ``g`` backward (LSQ's step-size gradient scale).

    ``x g + (x - x g).detach()`` has the gradient but not always the value: the
    sum can round to a neighbour of ``x``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, g: float) -> torch.Tensor:  # type: ignore[override]
        ctx.g = g
        return x.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad * ctx.g, None


class ValueOf(torch.autograd.Function):
    """``value`` forward, exactly; the gradient goes to ``x`` unchanged (``value`` has none).

    A quantizer's output with pinned values (a packed file's) in their place:
    ``x + (value - x).detach()`` can round away from ``value``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return value.detach().clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


round_ste = RoundSTE.apply
scale_grad = ScaleGrad.apply
value_of = ValueOf.apply
dorefa_weight_ste = DoReFaWeightSTE.apply
clipped_round_ste = ClippedRoundSTE.apply
clip_round_ste = ClipRoundSTE.apply
scaled_sign_ste = ScaledSignSTE.apply
