"""Quantizers: weight quantizers as registered classes, and the activation quantizer.

Notation (DoReFa-Net, Zhou et al. 2016): for ``x`` in [0, 1],
``Q_k(x) = round((2^k - 1) x) / (2^k - 1)``, and the backward pass treats
``round`` as the identity (straight-through estimator).

A weight quantizer is one class in this module's registry (after larq's
quantizer classes and torchao's handler registry): its ``name`` is the mode a
schedule string uses (``"dorefa:4"``), its formula is in its docstring, and it
says how many levels it has, its minimum bit-width, and how its values become
the integer codes of a packed file and back. ``@register_weight_quantizer``
on a new subclass is all it takes for schedules, packing, the memory table and
the playground widget to offer it.

``bits`` of 32 or ``None`` means full precision: the input is returned as it
is, the very same tensor.
"""

from __future__ import annotations

import operator
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .ste import clip_round_ste, clipped_round_ste, dorefa_weight_ste, scaled_sign_ste

#: bit-widths a quantized tensor may have; 32 means full precision.
ALLOWED_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)
FULL_PRECISION = 32
_EPS = 1e-12


def check_bits(bits, name: str = "bits", minimum: int = 1, allow_float: bool = True) -> int:
    """Return ``bits`` as an int in 1..8 or 32 (``None`` -> 32), else raise ValueError.

    With ``allow_float=False`` only 1..8 is accepted (32 and None are errors).
    """
    allowed = f"{minimum}..8 or 32 (full precision)" if allow_float else f"{minimum}..8"
    if bits is None:
        if not allow_float:
            raise ValueError(f"{name} must be an integer in {allowed}, got None")
        return FULL_PRECISION
    try:
        if isinstance(bits, bool):
            raise TypeError
        bits = operator.index(bits)  # ints and numpy integers; not floats, strings or bools
    except TypeError:
        raise ValueError(f"{name} must be an integer in {allowed}, got {bits!r} of type {type(bits).__name__}") \
            from None
    if (bits == FULL_PRECISION and allow_float) or minimum <= bits <= 8:
        return int(bits)
    raise ValueError(f"{name} must be an integer in {allowed}, got {bits!r}")


# -- the formulas as functions --------------------------------------------------------------------------------------
def _ls_scale(w: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """The least-squares scale ``<w, d> / <d, d>`` of ``d`` as an approximation of ``w`` (no gradient).

    Summed in float64, so that the result (rounded back to the weight's dtype)
    does not depend on the order in which a kernel adds.
    """
    with torch.no_grad():
        w64, d64 = w.double(), d.double()
        return ((w64 * d64).sum() / (d64 * d64).sum().clamp_min(_EPS)).clamp_min(_EPS).to(w.dtype)


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
    d = dorefa_weight_ste(w, float(2**bits - 1), _EPS)
    return d * _ls_scale(w, d) if rescale else d


def _symmetric_codes(w: torch.Tensor, m: int, step: torch.Tensor) -> torch.Tensor:
    return torch.round(w / step).clamp_(-m, m)


def symmetric_step(w: torch.Tensor, bits: int) -> torch.Tensor:
    """The step ``s`` of the symmetric quantizer for ``w`` at ``bits`` (no gradient).

    ``k = 1``: ``mean|w|``. ``k = 2`` (ternary weight networks, Li, Zhang & Liu
    2016): the threshold is ``0.7 mean|w|`` and ``s`` the mean of the ``|w|``
    above it. ``k >= 3``: codes first on the step ``max|w| / m`` (no clipping),
    then three rounds of refitting ``s`` by least squares to the codes and the
    codes to ``s`` (Lloyd's alternation for a uniform grid; for ternary codes
    the least-squares ``s`` is exactly TWN's).
    """
    with torch.no_grad():
        a = w.double().abs()  # sums in float64: the step does not depend on the order a kernel adds in
        mean = a.mean().clamp_min(_EPS)
        if bits == 1:
            return mean.to(w.dtype)
        m = 2 ** (bits - 1) - 1
        if bits == 2:
            above = a > 0.7 * mean
            return torch.where(above.any(), (a * above).sum() / above.sum().clamp_min(1), mean).to(w.dtype)
        w64 = w.double()
        step = (a.max() / m).clamp_min(_EPS)
        for _ in range(3):
            q = _symmetric_codes(w64, m, step)
            step = ((w64 * q).sum() / (q * q).sum().clamp_min(_EPS)).clamp_min(_EPS)
        return step.to(w.dtype)


def symmetric_weight(w: torch.Tensor, bits: int | None) -> torch.Tensor:
    """Symmetric weights with an exact zero, the thesis's family ("sparse interval"; binary at 1 bit).

    With ``m = 2^(k-1) - 1`` and the step ``s`` of ``symmetric_step``::

        k = 1:   w_q = s sign(w),  s = mean|w|                      (binary, 2 levels)
        k >= 2:  w_q = s clip(round(w / s), -m, m)                  (2^k - 1 levels, one of them 0)

    At 2 bits this is a ternary weight network ({-s, 0, s}, threshold
    ``0.7 mean|w|``). ``round`` is straight-through inside the clip range
    and the gradient is zero outside it; the step has no gradient.

    Example:
        >>> symmetric_weight(torch.tensor([-0.9, -0.2, 0.1, 0.6, 1.0]), 2).tolist()
        [-0.8333333134651184, -0.0, 0.0, 0.8333333134651184, 0.8333333134651184]
    """
    bits = check_bits(bits)
    if bits == FULL_PRECISION:
        return w
    if bits == 1:
        return scaled_sign_ste(w)
    m = 2 ** (bits - 1) - 1
    step = symmetric_step(w, bits)
    return clip_round_ste(w / step, float(-m), float(m)) * step


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


# -- the registry ---------------------------------------------------------------------------------------------------
class WeightQuantizer(nn.Module):
    """Base class of weight quantizers: one instance quantizes one weight tensor at ``bits``.

    Subclasses set ``name`` (the mode in a schedule string), ``label`` (for
    people), ``min_bits``, and implement ``forward`` (the formula, with its
    straight-through gradient), ``levels``, ``encode``/``decode`` (integer
    codes in ``0 .. 2^bits - 1`` plus at most one float scale per tensor) and
    ``latent`` (a float weight that ``forward`` maps back exactly onto given
    quantized values, used when a packed file is loaded). A quantizer with
    learned state (a step size) keeps it in parameters or buffers and sets it
    from the float weight in ``init_from``.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    min_bits: ClassVar[int] = 1

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_bits(bits, "w_bits", minimum=self.min_bits, allow_float=False)

    @classmethod
    def levels(cls, bits: int) -> int:
        """Number of distinct values the quantizer can output at ``bits``."""
        raise NotImplementedError

    def init_from(self, w: torch.Tensor) -> None:
        """Initialise learned state from the float weight (nothing to do for fixed quantizers)."""

    def encode(self, wq: torch.Tensor, w: torch.Tensor) -> tuple[np.ndarray, float | None]:
        """Integer codes (uint8, ``< 2^bits``) and the per-tensor scale of the quantized values ``wq`` of the
        float weight ``w``."""
        raise NotImplementedError

    def decode(self, codes: np.ndarray, shape, scale: float | None) -> torch.Tensor:
        """The quantized values that ``encode`` turned into ``codes`` and ``scale``."""
        raise NotImplementedError

    def latent(self, wq: torch.Tensor) -> torch.Tensor:
        """A float weight that this quantizer maps back onto ``wq`` (to within rounding: a loaded model is
        pinned to the stored values until its weights change)."""
        return wq.clone()

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


#: weight modes by name, in registration order
WEIGHT_QUANTIZERS: dict[str, type[WeightQuantizer]] = {}


def register_weight_quantizer(cls: type[WeightQuantizer]) -> type[WeightQuantizer]:
    """Class decorator: make a ``WeightQuantizer`` subclass available as the weight mode ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, WeightQuantizer)) or not cls.name:
        raise TypeError("register_weight_quantizer needs a WeightQuantizer subclass with a name")
    if cls.name in WEIGHT_QUANTIZERS and WEIGHT_QUANTIZERS[cls.name] is not cls:
        raise ValueError(f"a weight quantizer named {cls.name!r} is already registered")
    WEIGHT_QUANTIZERS[cls.name] = cls
    return cls


def weight_quantizer(mode: str) -> type[WeightQuantizer]:
    """The registered class of weight mode ``mode``; ValueError naming the modes otherwise."""
    try:
        return WEIGHT_QUANTIZERS[mode]
    except (KeyError, TypeError):
        raise ValueError(f"weight_mode must be one of {tuple(WEIGHT_QUANTIZERS)}, got {mode!r}") from None


@register_weight_quantizer
class DoReFaWeight(WeightQuantizer):
    """DoReFa-Net weights rescaled to the weight's magnitude (``dorefa_weight``): 2^k levels, no zero.

    Codes: ``q`` in ``0 .. 2^k - 1`` with ``w_q = a (2 q / (2^k - 1) - 1)`` and
    the scale ``a`` (``max|w_q|``, the least-squares scale); at 1 bit the sign
    bit and ``a = mean|w|``.
    """

    name, label, min_bits = "dorefa", "DoReFa", 1

    @classmethod
    def levels(cls, bits: int) -> int:
        return 2 if bits == 1 else 2**bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return dorefa_weight(w, self.bits)

    def encode(self, wq, w):
        scale = float(wq.abs().max())
        if self.bits == 1:
            return (wq >= 0).to(torch.uint8).cpu().numpy(), scale
        n = 2**self.bits - 1
        return torch.round((wq / scale + 1) * (n / 2)).to(torch.uint8).cpu().numpy(), scale

    def decode(self, codes, shape, scale):
        q = torch.from_numpy(codes.astype(np.float32)).reshape(shape)
        s = torch.tensor(scale, dtype=torch.float32)
        if self.bits == 1:
            return torch.where(q > 0, s, -s)
        return (2 * q.div_(float(2**self.bits - 1)) - 1) * s

    def latent(self, wq):
        if self.bits == 1:
            return _latent_binary(wq)
        a = wq.abs().max()
        # tanh of this is d tanh(a): normalised by its largest value it is d itself, the centre of each level's
        # interval, and its size is that of the weight the values came from
        return torch.atanh((wq / a) * torch.tanh(a))


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


@register_weight_quantizer
class SymmetricWeight(WeightQuantizer):
    """The thesis's family with an exact zero (``symmetric_weight``): binary at 1 bit, ternary (TWN) at 2,
    2^k - 1 levels ``s q`` with a least-squares step above.

    Codes: ``q + m`` (``m = 2^(k-1) - 1``) with the step ``s``; at 1 bit the
    sign bit and ``s = mean|w|``.
    """

    name, label, min_bits = "symmetric", "symmetric", 1

    @classmethod
    def levels(cls, bits: int) -> int:
        return 2 if bits == 1 else 2**bits - 1

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return symmetric_weight(w, self.bits)

    def encode(self, wq, w):
        if self.bits == 1:
            return (wq >= 0).to(torch.uint8).cpu().numpy(), float(wq.abs().max())
        step = float(symmetric_step(w, self.bits))
        m = 2 ** (self.bits - 1) - 1
        return (torch.round(wq / step).to(torch.int16) + m).to(torch.uint8).cpu().numpy(), step

    def decode(self, codes, shape, scale):
        q = torch.from_numpy(codes.astype(np.float32)).reshape(shape)
        s = torch.tensor(scale, dtype=torch.float32)
        if self.bits == 1:
            return torch.where(q > 0, s, -s)
        return (q - float(2 ** (self.bits - 1) - 1)) * s

    def latent(self, wq):
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

    Codes: ``q + Q_N`` and the step ``s``.
    """

    name, label, min_bits = "lsq", "LSQ", 2

    def __init__(self, bits: int):
        super().__init__(bits)
        self.step = nn.Parameter(torch.tensor(1.0))

    @classmethod
    def levels(cls, bits: int) -> int:
        return 2**bits

    @property
    def _range(self) -> tuple[int, int]:
        return 2 ** (self.bits - 1), 2 ** (self.bits - 1) - 1

    def init_from(self, w: torch.Tensor) -> None:
        with torch.no_grad():
            self.step.copy_(2 * w.abs().mean().clamp_min(_EPS) / self._range[1] ** 0.5)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        qn, qp = self._range
        g = 1.0 / (w.numel() * qp) ** 0.5
        step = self.step * g + (self.step - self.step * g).detach()  # the value of s, the gradient of g s
        step = step.abs().clamp_min(_EPS)
        return clip_round_ste(w / step, float(-qn), float(qp)) * step

    def encode(self, wq, w):
        step = self.step.detach().abs().clamp_min(_EPS)
        return (torch.round(wq / step).to(torch.int16) + self._range[0]).to(torch.uint8).cpu().numpy(), float(step)

    def decode(self, codes, shape, scale):
        q = torch.from_numpy(codes.astype(np.float32)).reshape(shape)
        return (q - float(self._range[0])) * torch.tensor(scale, dtype=torch.float32)


# -- activations ----------------------------------------------------------------------------------------------------
class ActivationQuantizer(nn.Module):
    """Base class of input (activation) quantizers; ``name`` is the mode after the ``/`` of a schedule string."""

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_bits(bits, "a_bits", allow_float=False)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


#: activation modes by name
ACTIVATION_QUANTIZERS: dict[str, type[ActivationQuantizer]] = {}


def register_activation_quantizer(cls: type[ActivationQuantizer]) -> type[ActivationQuantizer]:
    """Class decorator: make an ``ActivationQuantizer`` subclass available as the input mode ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, ActivationQuantizer)) or not cls.name:
        raise TypeError("register_activation_quantizer needs an ActivationQuantizer subclass with a name")
    ACTIVATION_QUANTIZERS[cls.name] = cls
    return cls


def activation_quantizer(mode: str) -> type[ActivationQuantizer]:
    """The registered class of input mode ``mode``; ValueError naming the modes otherwise."""
    try:
        return ACTIVATION_QUANTIZERS[mode]
    except (KeyError, TypeError):
        raise ValueError(f"act_mode must be one of {tuple(ACTIVATION_QUANTIZERS)}, got {mode!r}") from None


@register_activation_quantizer
class DoReFaActivation(ActivationQuantizer):
    """DoReFa inputs (``quantize_activation``): ``Q_k(clip(x, 0, 1))``, 2^k levels in [0, 1]."""

    name, label = "dorefa", "DoReFa"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_activation(x, self.bits)


@register_activation_quantizer
class PACTActivation(ActivationQuantizer):
    """PACT inputs (Choi et al. 2018, arXiv 1805.06085): a learned clip ``a``, then ``k`` bits on ``[0, a]``.

    ``y = min(max(x, 0), a)``, ``x_q = a round(y (2^k - 1) / a) / (2^k - 1)``,
    with ``a`` initialised at 6. The quantization is straight-through as a
    whole (``x_q`` counts as ``y`` backward), so the gradient of ``a`` is
    PACT's: 1 where ``x >= a``, else 0.
    """

    name, label = "pact", "PACT"

    def __init__(self, bits: int):
        super().__init__(bits)
        self.alpha = nn.Parameter(torch.tensor(6.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha.abs().clamp_min(_EPS)
        n = float(2**self.bits - 1)
        y = torch.minimum(x.clamp(min=0), a)
        # y + (q - y) is q exactly: q is within half a step of y, so the difference is exact (Sterbenz)
        return y + (torch.round(y * (n / a)) * (a / n) - y).detach()
