"""Quantizer functions: weights (DoReFa, symmetric) and activations (DoReFa).

Notation (DoReFa-Net, Zhou et al. 2016): for ``x`` in [0, 1],
``Q_k(x) = round((2^k - 1) x) / (2^k - 1)``, and the backward pass treats
``round`` as the identity (straight-through estimator).

``bits`` of 32 or ``None`` means full precision: the input is returned as it
is, the very same tensor.
"""

from __future__ import annotations

import operator

import torch

from .ste import clipped_round_ste, dorefa_weight_ste, round_ste, scaled_sign_ste

#: bit-widths a quantized layer may have; 32 means full precision.
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


WEIGHT_QUANTIZERS = {"dorefa": dorefa_weight, "symmetric": symmetric_weight}

