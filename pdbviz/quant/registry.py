"""The quantizer registries: bit-width checks, the two base classes and ``register_*``.

A quantizer is one class (after larq's quantizer classes and torchao's handler
registry). Its ``name`` is the mode a schedule string uses (``"dorefa:4"``,
``"4/pact:8"``), its docstring holds its formula and straight-through
gradient, and it states its ``label``, its minimum bit-width, how many levels
it has (``levels``) and the integer grid its values lie on (``IntegerGrid``).
Packed files store the codes of that grid and every export format writes it,
so ``@register_weight_quantizer`` (or ``@register_activation_quantizer``) on a
new subclass is all it takes for schedules, packing, export, the memory table
and the playground widget to offer it.
"""

from __future__ import annotations

import operator
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .grid import IntegerGrid

#: bit-widths a quantized tensor may have; 32 means full precision.
ALLOWED_BITS = (1, 2, 3, 4, 5, 6, 7, 8, 32)
#: the bit-width that means "not quantized".
FULL_PRECISION = 32
EPS = 1e-12  # the smallest scale a quantizer divides by


def check_bits(bits, name: str = "bits", minimum: int = 1, allow_float: bool = True) -> int:
    """Return ``bits`` as an int in 1..8 or 32 (``None`` -> 32), else raise ValueError.

    With ``allow_float=False`` only ``minimum``..8 is accepted (32 and None are errors).

    Example:
        >>> check_bits(None), check_bits(4, minimum=2)
        (32, 4)
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


_NO_GRID = "{} states no integer grid: define tensor_scale and grid to pack or export its weights"


def _missing(cls: type, base: type, names: tuple[str, ...]) -> list[str]:
    """The members of ``names`` that no class between ``cls`` and ``base`` (excluded) defines."""
    own = [k for k in cls.__mro__ if k is not base and issubclass(k, base)]
    return [n for n in names if not any(n in vars(k) for k in own)]


# -- weights --------------------------------------------------------------------------------------------------------
class WeightQuantizer(nn.Module):
    """Base class of weight quantizers: one instance quantizes one weight tensor at ``bits``.

    A subclass sets ``name`` (the mode in a schedule string), ``label`` (for
    people) and ``min_bits``, writes its formula and gradient in its
    docstring, and implements:

    - ``forward(w)``: the quantized weight, with its straight-through gradient;
    - ``levels(bits)``: how many distinct values it outputs;
    - ``tensor_scale(wq, w)``: the one float per tensor that, with ``bits``,
      fixes where the values ``wq`` lie (a step, or the largest value);
    - ``grid(scale)``: the ``IntegerGrid`` of its values at that scale.

    (A class without the last two trains and evaluates, but cannot be packed
    or exported.) Everything else follows from these: ``integer_grid`` (read by every
    export format), ``encode``/``decode`` (the codes of a packed file) and
    ``latent`` (a float weight that ``forward`` maps back onto loaded values).
    A quantizer with learned state (a step size) keeps it in parameters or
    buffers and sets it from the float weight in ``init_from``.
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

    def tensor_scale(self, wq: torch.Tensor, w: torch.Tensor) -> float:
        """The per-tensor number that fixes the grid of the quantized values ``wq`` of the float weight ``w``.

        It is what a packed file stores beside the codes; 0 only for a tensor of zeros.
        """
        raise NotImplementedError(_NO_GRID.format(type(self).__name__))

    def grid(self, scale: float) -> IntegerGrid:
        """The integer grid of this quantizer's values at ``bits`` for the per-tensor ``scale``."""
        raise NotImplementedError(_NO_GRID.format(type(self).__name__))

    def integer_grid(self, wq: torch.Tensor, w: torch.Tensor | None = None) -> IntegerGrid:
        """The integer grid on which the quantized weight ``wq`` (of the float weight ``w``) lies.

        Example:
            >>> from pdbviz.quant import weight_quantizer
            >>> q = weight_quantizer("dorefa")(2)
            >>> w = torch.tensor([-1.0, -0.2, 0.3, 1.0])
            >>> q.integer_grid(q(w), w).int_range
            (-2, 1)
        """
        with torch.no_grad():
            scale = self.tensor_scale(wq.detach(), (wq if w is None else w).detach())
        return self.grid(scale or 1.0)

    def encode(self, wq: torch.Tensor, w: torch.Tensor) -> tuple[np.ndarray, float]:
        """The codes (uint8, ``< 2^bits``, the grid's codes shifted to start at 0) and the per-tensor scale of
        the quantized values ``wq`` of the float weight ``w``."""
        scale = self.tensor_scale(wq, w)
        if not scale:  # a tensor of zeros (a binary quantizer's output for a zero weight): no grid holds it
            return np.zeros(tuple(wq.shape), np.uint8), 0.0
        return self.grid(scale).unsigned_codes(wq).astype(np.uint8), scale

    def decode(self, codes: np.ndarray, shape, scale: float) -> torch.Tensor:
        """The quantized values (float32) that ``encode`` turned into ``codes`` and ``scale``."""
        if not scale:
            return torch.zeros(tuple(shape))
        grid = self.grid(float(scale))
        # the products code * scale are exact in float64, so rounding them once gives float32's own products
        return torch.from_numpy(grid.values(grid.signed_codes(codes))).float().reshape(tuple(shape))

    def latent(self, wq: torch.Tensor) -> torch.Tensor:
        """A float weight that this quantizer maps back onto ``wq`` (to within rounding: a loaded model is
        pinned to the stored values until its weights change)."""
        return wq.clone()

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


#: weight modes by name, in registration order
WEIGHT_QUANTIZERS: dict[str, type[WeightQuantizer]] = {}


def register_weight_quantizer(cls: type[WeightQuantizer]) -> type[WeightQuantizer]:
    """Class decorator: make a ``WeightQuantizer`` subclass available as the weight mode ``cls.name``.

    Example::

        @register_weight_quantizer
        class Ternary(WeightQuantizer):
            name, label, min_bits = "ternary", "ternary", 2
            ...  # forward, levels, tensor_scale, grid

    ``forward`` and ``levels`` are required; without ``tensor_scale`` and
    ``grid`` the mode trains and evaluates but cannot be packed or exported.
    """
    if not (isinstance(cls, type) and issubclass(cls, WeightQuantizer)) or not cls.name:
        raise TypeError("register_weight_quantizer needs a WeightQuantizer subclass with a name")
    missing = _missing(cls, WeightQuantizer, ("forward", "levels"))
    if missing:
        raise TypeError(f"weight quantizer {cls.__name__} must define {', '.join(missing)}")
    if cls.name in WEIGHT_QUANTIZERS and WEIGHT_QUANTIZERS[cls.name] is not cls:
        raise ValueError(f"a weight quantizer named {cls.name!r} is already registered")
    WEIGHT_QUANTIZERS[cls.name] = cls
    return cls


def weight_quantizer(mode: str) -> type[WeightQuantizer]:
    """The registered class of weight mode ``mode``; ValueError naming the modes otherwise.

    Example:
        >>> weight_quantizer("dorefa").levels(2)
        4
    """
    try:
        return WEIGHT_QUANTIZERS[mode]
    except (KeyError, TypeError):
        raise ValueError(f"weight_mode must be one of {tuple(WEIGHT_QUANTIZERS)}, got {mode!r}") from None


# -- activations ----------------------------------------------------------------------------------------------------
class ActivationQuantizer(nn.Module):
    """Base class of input (activation) quantizers; ``name`` is the mode after the ``/`` of a schedule string.

    A subclass sets ``name``, ``label`` and ``min_bits``, writes its formula in
    its docstring, and implements ``forward(x)`` and ``integer_grid()`` (its
    grid from its bits and learned state, such as a clip level; without it the
    mode cannot be exported); ``levels`` is ``2^bits`` unless it says otherwise.
    """

    name: ClassVar[str] = ""
    label: ClassVar[str] = ""
    min_bits: ClassVar[int] = 1

    def __init__(self, bits: int):
        super().__init__()
        self.bits = check_bits(bits, "a_bits", minimum=self.min_bits, allow_float=False)

    @classmethod
    def levels(cls, bits: int) -> int:
        """Number of distinct values the quantizer can output at ``bits``."""
        return 2**bits

    def integer_grid(self) -> IntegerGrid:
        """The integer grid of this quantizer's values (its bits and learned state)."""
        raise NotImplementedError(f"{type(self).__name__} states no integer grid: define integer_grid to export it")

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


#: activation modes by name
ACTIVATION_QUANTIZERS: dict[str, type[ActivationQuantizer]] = {}


def register_activation_quantizer(cls: type[ActivationQuantizer]) -> type[ActivationQuantizer]:
    """Class decorator: make an ``ActivationQuantizer`` subclass available as the input mode ``cls.name``.

    Example::

        @register_activation_quantizer
        class Clipped(ActivationQuantizer):
            name, label = "clipped", "clipped"
            ...  # forward, integer_grid (needed to export)
    """
    if not (isinstance(cls, type) and issubclass(cls, ActivationQuantizer)) or not cls.name:
        raise TypeError("register_activation_quantizer needs an ActivationQuantizer subclass with a name")
    missing = _missing(cls, ActivationQuantizer, ("forward",))
    if missing:
        raise TypeError(f"activation quantizer {cls.__name__} must define {', '.join(missing)}")
    if cls.name in ACTIVATION_QUANTIZERS and ACTIVATION_QUANTIZERS[cls.name] is not cls:
        raise ValueError(f"an activation quantizer named {cls.name!r} is already registered")
    ACTIVATION_QUANTIZERS[cls.name] = cls
    return cls


def activation_quantizer(mode: str) -> type[ActivationQuantizer]:
    """The registered class of input mode ``mode``; ValueError naming the modes otherwise.

    Example:
        >>> activation_quantizer("dorefa").levels(2)
        4
    """
    try:
        return ACTIVATION_QUANTIZERS[mode]
    except (KeyError, TypeError):
        raise ValueError(f"act_mode must be one of {tuple(ACTIVATION_QUANTIZERS)}, got {mode!r}") from None
