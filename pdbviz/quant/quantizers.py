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

from .ste import clipped_round_ste, dorefa_weight_ste, round_ste, scaled_sign_ste

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
def dorefa_weight(w: torch.Tensor, bits: int | None) -> torch.Tensor:
    """DoReFa weight quantizer.

    For ``bits = k >= 2``::

        w_n = tanh(w) / (2 max|tanh(w)|) + 1/2        # in [0, 1]
        w_q = 2 Q_k(w_n) - 1                          # 2^k levels in [-1, 1]

    The gradient flows through ``tanh`` and the normalisation; ``round`` is
    straight-through.

    For ``bits = 1``: ``w_q = mean(|w|) * sign(w)`` (one scale per tensor,
    ``sign(0) = +1``), with an identity gradient.

    Example:
        >>> w = torch.randn(64, 32)
        >>> len(torch.unique(dorefa_weight(w, 2))) <= 4
        True
    """
    bits = check_bits(bits)
    if bits == FULL_PRECISION:
        return w
    if bits == 1:
        return scaled_sign_ste(w)
    return dorefa_weight_ste(w, float(2**bits - 1), _EPS)


def symmetric_weight(w: torch.Tensor, bits: int | None) -> torch.Tensor:
    """Symmetric ("sparse interval") weight quantizer with an exact zero.

    With ``m = 2^(k-1) - 1`` and ``s = max|w|`` (one scale per tensor)::

        w_q = sign(w) round(m |w| / s) / m             # 2^k - 1 levels in [-1, 1]

    This is the thesis formula applied to ``w / max|w|``. ``k = 2`` gives
    ternary weights {-1, 0, 1}. ``round`` is straight-through. Needs
    ``bits >= 2``.

    Example:
        >>> symmetric_weight(torch.tensor([-0.9, -0.2, 0.1, 0.6, 1.0]), 2).tolist()
        [-1.0, -0.0, 0.0, 1.0, 1.0]
    """
    bits = check_bits(bits, minimum=2)
    if bits == FULL_PRECISION:
        return w
    m = float(2 ** (bits - 1) - 1)
    wn = w / w.abs().max().clamp_min(_EPS)
    return round_ste(wn, m)


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

    def encode(self, wq: torch.Tensor) -> tuple[np.ndarray, float | None]:
        """Integer codes (uint8, ``< 2^bits``) and the per-tensor scale of quantized values ``wq``."""
        raise NotImplementedError

    def decode(self, codes: np.ndarray, shape, scale: float | None) -> torch.Tensor:
        """The quantized values that ``encode`` turned into ``codes`` and ``scale``."""
        raise NotImplementedError

    def latent(self, wq: torch.Tensor) -> torch.Tensor:
        """A float weight that this quantizer maps back exactly onto ``wq``."""
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
    """DoReFa-Net weights (``dorefa_weight``): 2^k levels in [-1, 1] for k >= 2, ``mean|w| sign(w)`` at 1 bit.

    Codes: ``q`` in ``0 .. 2^k - 1`` with ``w_q = 2 q / (2^k - 1) - 1``; at
    1 bit the sign bit and the scale ``mean|w|``.
    """

    name, label, min_bits = "dorefa", "DoReFa", 1

    @classmethod
    def levels(cls, bits: int) -> int:
        return 2 if bits == 1 else 2**bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return dorefa_weight(w, self.bits)

    def encode(self, wq):
        if self.bits == 1:
            return (wq >= 0).to(torch.uint8).cpu().numpy(), float(wq.abs().max())
        n = 2**self.bits - 1
        return torch.round((wq + 1) * (n / 2)).to(torch.uint8).cpu().numpy(), None

    def decode(self, codes, shape, scale):
        q = torch.from_numpy(codes.astype(np.float32)).reshape(shape)
        if self.bits == 1:
            s = torch.tensor(scale, dtype=torch.float32)
            return torch.where(q > 0, s, -s)
        return 2 * q.div_(float(2**self.bits - 1)) - 1

    def latent(self, wq):
        if self.bits >= 2:
            return torch.atanh(0.5 * wq)
        # mean(|w|) of n copies of s can differ from s by rounding; nudge one element until the quantizer's own
        # scale comes out as s again, a different element each round so that rounding inside the sum cannot
        # swallow the same correction twice.
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
    """Symmetric weights with an exact zero (``symmetric_weight``): 2^k - 1 levels in [-1, 1], k >= 2.

    Codes: ``q + m`` with ``w_q = q / m``, ``m = 2^(k-1) - 1``.
    """

    name, label, min_bits = "symmetric", "symmetric", 2

    @classmethod
    def levels(cls, bits: int) -> int:
        return 2**bits - 1

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return symmetric_weight(w, self.bits)

    def encode(self, wq):
        m = 2 ** (self.bits - 1) - 1
        return (torch.round(wq * m).to(torch.int16) + m).to(torch.uint8).cpu().numpy(), None

    def decode(self, codes, shape, scale):
        m = float(2 ** (self.bits - 1) - 1)
        return (torch.from_numpy(codes.astype(np.float32)).reshape(shape) - m).div_(m)


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
