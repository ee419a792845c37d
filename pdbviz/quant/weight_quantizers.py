"""The built-in weight quantizers: DoReFa-Net, the symmetric family (binary, TWN ternary, k-bit) and LSQ.

Notation (DoReFa-Net, Zhou et al. 2016): for ``x`` in [0, 1],
``Q_k(x) = round((2^k - 1) x) / (2^k - 1)``, and the backward pass treats
``round`` as the identity (straight-through estimator). ``bits`` of 32 or
``None`` means full precision: the input is returned as it is, the very same
tensor. Each formula is also a registered class (``registry``), which states
its levels and integer grid.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .grid import IntegerGrid
from .registry import EPS, FULL_PRECISION, WeightQuantizer, check_bits, register_weight_quantizer
from .ste import clip_round_ste, dorefa_weight_ste, scale_grad, scaled_sign_ste

#: TWN's threshold factor: weights with ``|w| <= 0.7 E|w|`` become 0 (Li & Liu 2016)
TWN_THRESHOLD = 0.7


# -- the formulas as functions --------------------------------------------------------------------------------------
def _ls_scale(w: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The least-squares scale ``<w, d> / <d, d>`` of ``d`` as an approximation of ``w`` (no gradient).

    Summed in float64, so that the result (rounded back to the weight's dtype)
    does not depend on the order in which a kernel adds.
    """
    with torch.no_grad():
        w64, d64 = w.double(), d.double()
        return ((w64 * d64).sum() / (d64 * d64).sum().clamp_min(EPS)).clamp_min(EPS).to(w.dtype)


def dorefa_weight(w: torch.Tensor, bits: int | None, rescale: bool = True) -> torch.Tensor:
    """DoReFa weight quantizer, rescaled to the weight's own magnitude.

    For ``bits = k >= 2``, DoReFa-Net's formula::

        w_n = tanh(w) / (2 max|tanh(w)|) + 1/2        # in [0, 1]
        d   = 2 Q_k(w_n) - 1                          # 2^k levels in [-1, 1]
        w_q = a d,   a = <w, d> / <d, d>              # least-squares scale, no gradient

    The gradient flows through ``tanh`` and the normalisation; ``round`` is
    straight-through. For ``bits = 1``: ``w_q = mean(|w|) * sign(w)`` (one
    scale per tensor, ``sign(0) = +1``), with an identity gradient; ``mean|w|``
    is the same least-squares scale for ``d = sign(w)``, so the scale rule is
    one for every ``k``. DoReFa-Net's ``d`` lies in [-1, 1] whatever the
    weight's size and relies on a following BatchNorm to absorb that; a layer
    without one (a classifier's last layer) would change its output's scale by
    ``1 / a`` (about 10x for a LeNet head), which is why pdbviz rescales.
    ``rescale=False`` gives the paper's ``d`` itself.

    Example:
        >>> w = torch.randn(64, 32) * 0.05
        >>> q = dorefa_weight(w, 2)
        >>> len(torch.unique(q)) <= 4 and abs(float(q.abs().max()) - 0.05 * 3) < 0.1
        True
    """
    bits = check_bits(bits)
    if bits == FULL_PRECISION:
        return w
    if bits == 1:
        return scaled_sign_ste(w)
    d = dorefa_weight_ste(w, float(2**bits - 1), EPS)
    return d * _ls_scale(w, d) if rescale else d


def _twn(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """TWN's threshold ``Δ = 0.7 E|w|`` and scale ``α = E[|w| : |w| > Δ]``, both float64 (no gradient)."""
    with torch.no_grad():
        a = w.double().abs()  # sums in float64: they do not depend on the order a kernel adds in
        delta = TWN_THRESHOLD * a.mean()
        above = a > delta
        alpha = torch.where(above.any(), (a * above).sum() / above.sum().clamp_min(1), a.mean().clamp_min(EPS))
        return delta, alpha


class _TernarySTE(torch.autograd.Function):
    """``α sign(w)`` where ``|w| > Δ``, else 0, forward; backward passes the gradient where ``|w| <= α``."""

    @staticmethod
    def forward(ctx, w: torch.Tensor, delta: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        a = w.abs()
        ctx.save_for_backward(a <= alpha)
        big = a.double() > delta
        return torch.where(big, torch.where(w > 0, alpha, -alpha), torch.zeros_like(w))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None


def _symmetric_codes(w: torch.Tensor, m: int, step: torch.Tensor) -> torch.Tensor:
    return torch.round(w / step).clamp_(-m, m)


def symmetric_step(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The step ``s`` of the symmetric quantizer for ``w`` at ``bits`` (no gradient): its values are ``s q``.

    ``k = 1``: ``mean|w|``. ``k = 2``: TWN's scale ``α``, the mean of the
    ``|w|`` above the threshold ``Δ = 0.7 mean|w|`` (Li & Liu 2016).
    ``k >= 3``: codes first on the step ``max|w| / m`` (no clipping), then
    three rounds of refitting ``s`` by least squares to the codes and the
    codes to ``s`` (Lloyd's alternation for a uniform grid).

    Example:
        >>> float(symmetric_step(torch.tensor([-1.0, 0.1, 0.5]), 2))   # Δ = 0.7 · 1.6 / 3 = 0.373
        0.75
    """
    with torch.no_grad():
        if bits == 2:
            return _twn(w)[1].to(w.dtype)
        a = w.double().abs()
        if bits == 1:
            return a.mean().clamp_min(EPS).to(w.dtype)
        m = 2 ** (bits - 1) - 1
        w64 = w.double()
        step = (a.max() / m).clamp_min(EPS)
        for _ in range(3):
            q = _symmetric_codes(w64, m, step)
            step = ((w64 * q).sum() / (q * q).sum().clamp_min(EPS)).clamp_min(EPS)
        return step.to(w.dtype)


def symmetric_weight(w: torch.Tensor, bits: int | None) -> torch.Tensor:
    """Symmetric weights with an exact zero, the thesis's family: binary at 1 bit, TWN ternary at 2.

    With ``m = 2^(k-1) - 1`` and the step ``s`` of ``symmetric_step``::

        k = 1:   w_q = s sign(w),  s = mean|w|                          (binary, 2 levels)
        k = 2:   w_q = α sign(w) if |w| > Δ else 0,                     (TWN, 3 levels)
                 Δ = 0.7 mean|w|,  α = mean of |w| over {|w| > Δ}
        k >= 3:  w_q = s clip(round(w / s), -m, m)                      (2^k - 1 levels, one of them 0)

    The 2-bit case is the ternary weight network of Li & Liu (2016, arXiv
    1605.04711) as published. The gradient is straight-through: the identity
    where ``|w| <= m s`` (``|w| <= α`` at 2 bits) and zero outside; at 1 bit the
    identity everywhere. Steps, thresholds and scales have no gradient.

    Example:
        >>> w = torch.tensor([-2.0, -0.2, 0.1, 0.75, 2.0])   # Δ = 0.707, α = (2 + 0.75 + 2) / 3
        >>> q = symmetric_weight(w, 2)
        >>> (q / q.abs().max()).tolist(), round(float(q.abs().max()), 4)
        ([-1.0, 0.0, 0.0, 1.0, 1.0], 1.5833)
    """
    bits = check_bits(bits)
    if bits == FULL_PRECISION:
        return w
    if bits == 1:
        return scaled_sign_ste(w)
    if bits == 2:
        delta, alpha = _twn(w)
        return _TernarySTE.apply(w, delta, alpha.to(w.dtype))
    m = 2 ** (bits - 1) - 1
    step = symmetric_step(w, bits)
    return clip_round_ste(w / step, float(-m), float(m)) * step


def _bipolar(scale: float) -> IntegerGrid:
    return IntegerGrid(scale, 0.0, 1, signed=True, bipolar=True)


def _latent_binary(wq: torch.Tensor) -> torch.Tensor:
    """A float weight whose ``mean|w| sign(w)`` is ``wq``: ``wq`` with one element nudged until the mean of
    ``|w|`` comes out as the stored scale (a different element each round, so that rounding inside the sum
    cannot swallow the same correction twice)."""
    latent = wq.clone()
    s, flat = wq.abs().max(), latent.view(-1)
    for i in range(64):
        err = s - latent.abs().mean()
        if err == 0:
            break
        j = i % flat.numel()
        flat[j] = flat[j] + torch.sign(flat[j]) * err * flat.numel()
    return latent


# -- the registered classes -----------------------------------------------------------------------------------------
@register_weight_quantizer
class DoReFaWeight(WeightQuantizer):
    """DoReFa-Net weights rescaled to the weight's magnitude (``dorefa_weight``): 2^k levels, no zero.

    Grid, k >= 2: the values ``a (2c - n) / n``, ``c = 0..n``, ``n = 2^k - 1``,
    ``a = max|w_q|`` (the least-squares scale). With step ``2a / n`` and
    zero-point ``-1/2`` their codes ``c - 2^(k-1)`` fill the signed k-bit
    range. k = 1: ``±mean|w|``, bipolar. The per-tensor scale is ``a``.
    """

    name, label, min_bits = "dorefa", "DoReFa", 1

    @classmethod
    def levels(cls, bits: int) -> int:
        """``2^k`` (2 at one bit)."""
        return 2 if bits == 1 else 2**bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return dorefa_weight(w, self.bits)

    def tensor_scale(self, wq: torch.Tensor, w: torch.Tensor) -> float:
        """``a = max|w_q|``."""
        return float(wq.detach().abs().max())

    def grid(self, scale: float) -> IntegerGrid:
        """Signed k-bit codes, step ``2a / (2^k - 1)``, zero-point -1/2; bipolar ``±a`` at one bit."""
        if self.bits == 1:
            return _bipolar(scale)
        return IntegerGrid(2.0 * scale / (2**self.bits - 1), -0.5, self.bits, signed=True)

    def decode(self, codes, shape, scale):
        """The values, computed with the float32 operations of ``forward`` (so they are its values exactly)."""
        if self.bits == 1 or not scale:
            return super().decode(codes, shape, scale)
        # the stored codes are c = 0..n, Q_k's integers: w_q = a (2 c / n - 1)
        q = torch.from_numpy(codes.astype(np.float32)).reshape(tuple(shape))
        return (2 * q.div_(float(2**self.bits - 1)) - 1) * torch.tensor(scale, dtype=torch.float32)

    def latent(self, wq):
        """A weight whose DoReFa values are ``wq``: ``atanh`` of them scaled into ``tanh``'s range."""
        if self.bits == 1:
            return _latent_binary(wq)
        a = wq.abs().max()
        # tanh of this is d tanh(a): normalised by its largest value it is d itself, the centre of each level's
        # interval, and its size is that of the weight the values came from
        return torch.atanh((wq / a) * torch.tanh(a))


@register_weight_quantizer
class SymmetricWeight(WeightQuantizer):
    """The family with an exact zero (``symmetric_weight``): binary at 1 bit, TWN ternary at 2, 2^k - 1
    levels ``s q`` above.

    Grid: the values ``s q``, ``q`` in ``[-m, m]``, ``m = 2^(k-1) - 1``: the
    narrow signed k-bit range with step ``s`` (TWN's ``α`` at 2 bits, codes
    -1, 0, 1). k = 1: ``±mean|w|``, bipolar. The per-tensor scale is ``s``.
    """

    name, label, min_bits = "symmetric", "symmetric", 1

    @classmethod
    def levels(cls, bits: int) -> int:
        """``2^k - 1`` (2 at one bit)."""
        return 2 if bits == 1 else 2**bits - 1

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return symmetric_weight(w, self.bits)

    def tensor_scale(self, wq: torch.Tensor, w: torch.Tensor) -> float:
        """``mean|w|`` at one bit (read off ``wq``), else the step ``symmetric_step(w, bits)``."""
        if self.bits == 1:
            return float(wq.detach().abs().max())
        return float(symmetric_step(w.detach().float(), self.bits))

    def grid(self, scale: float) -> IntegerGrid:
        """Narrow signed k-bit codes with step ``s``; bipolar ``±s`` at one bit."""
        if self.bits == 1:
            return _bipolar(scale)
        return IntegerGrid(scale, 0.0, self.bits, signed=True, narrow=True)

    def latent(self, wq):
        """``wq`` itself (its step is its own); nudged at one bit so that its ``mean|w|`` is the scale."""
        return _latent_binary(wq) if self.bits == 1 else wq.clone()


@register_weight_quantizer
class LSQWeight(WeightQuantizer):
    """Learned step size quantization (LSQ, Esser et al., ICLR 2020, arXiv 1902.08153), k >= 2.

    ``w_q = s round(clip(w / s, -Q_N, Q_P))`` with ``Q_N = 2^(k-1)``,
    ``Q_P = 2^(k-1) - 1`` (2^k levels) and a learned step ``s`` per tensor,
    initialised at ``2 mean|w| / sqrt(Q_P)``. ``round`` is straight-through
    inside the clip range; the gradient of ``s`` is LSQ's
    (``round(w/s) - w/s`` inside, ``-Q_N`` or ``Q_P`` outside) scaled by
    ``1 / sqrt(numel Q_P)``.

    Grid: the signed k-bit range with the learned step ``s`` (the per-tensor scale).
    """

    name, label, min_bits = "lsq", "LSQ", 2

    def __init__(self, bits: int):
        super().__init__(bits)
        self.step = nn.Parameter(torch.tensor(1.0))

    @classmethod
    def levels(cls, bits: int) -> int:
        """``2^k``."""
        return 2**bits

    @property
    def _range(self) -> tuple[int, int]:
        return 2 ** (self.bits - 1), 2 ** (self.bits - 1) - 1

    def init_from(self, w: torch.Tensor) -> None:
        """``s = 2 mean|w| / sqrt(Q_P)``."""
        with torch.no_grad():
            self.step.copy_(2 * w.abs().mean().clamp_min(EPS) / self._range[1] ** 0.5)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        qn, qp = self._range
        g = 1.0 / (w.numel() * qp) ** 0.5
        step = scale_grad(self.step, g).abs().clamp_min(EPS)  # the value of s exactly, the gradient of g s
        return clip_round_ste(w / step, float(-qn), float(qp)) * step

    def tensor_scale(self, wq: torch.Tensor, w: torch.Tensor) -> float:
        """The learned step ``s``."""
        return float(self.step.detach().abs().clamp_min(EPS))

    def grid(self, scale: float) -> IntegerGrid:
        """Signed k-bit codes with step ``s``."""
        return IntegerGrid(scale, 0.0, self.bits, signed=True)
