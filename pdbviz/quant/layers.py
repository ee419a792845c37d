"""Quantized drop-in replacements for ``nn.Conv2d`` and ``nn.Linear``.

A layer quantizes its input with ``quantize_activation(x, spec.a_bits)`` and
its weight with the quantizer of ``spec.weight_mode`` at ``spec.w_bits``;
biases stay float. At full precision it runs the parent class's forward, so
it is bit-identical to the float layer.

In eval mode the quantized weight is computed once and reused until the
weight changes (an optimizer step, ``load_state_dict``) or the spec changes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .quantizers import FULL_PRECISION, WEIGHT_QUANTIZERS, quantize_activation
from .schedule import BitSpec


def _copy_state(src: nn.Module, dst: nn.Module, skip: tuple[str, ...]) -> None:
    """Give ``dst`` the hyper-parameters and the (shared) parameters of ``src``.

    Dict-valued attributes (parameters, buffers, hooks) are copied, so that
    registering a hook or a parameter on one module does not touch the other.
    """
    for key, value in src.__dict__.items():
        if key in skip:
            continue
        dst.__dict__[key] = type(value)(value) if isinstance(value, dict) else value


class _QuantMixin:
    """Shared behaviour of the quantized layers (one level, no hierarchy beyond it)."""

    spec: BitSpec
    _float_cls: type[nn.Module]

    def _init_quant(self, spec: BitSpec | None) -> None:
        if spec is None:
            spec = BitSpec()
        if not isinstance(spec, BitSpec):
            raise TypeError(f"spec must be a BitSpec, got {type(spec).__name__}")
        self.spec = spec
        self._wq_cache: tuple | None = None

    def set_spec(self, spec: BitSpec) -> None:
        """Change the layer's bit-widths in place."""
        self._init_quant(spec)

    def quantized_weight(self) -> torch.Tensor:
        """The weight the forward pass uses (the float weight at 32 bits)."""
        w = self.weight
        if self.spec.w_bits == FULL_PRECISION:
            return w
        if self.training or torch.is_grad_enabled() and w.requires_grad:
            self._wq_cache = None
            return WEIGHT_QUANTIZERS[self.spec.weight_mode](w, self.spec.w_bits)
        key = self._cache_key()
        if self._wq_cache is None or self._wq_cache[0] != key:
            with torch.no_grad():
                self._wq_cache = (key, WEIGHT_QUANTIZERS[self.spec.weight_mode](w, self.spec.w_bits))
        return self._wq_cache[1]

    def _pin_quantized_weight(self, wq: torch.Tensor) -> None:
        """Use exactly ``wq`` in eval mode until the weight changes (packed loading)."""
        self._wq_cache = (self._cache_key(), wq.to(self.weight.device, self.weight.dtype))

    def _cache_key(self) -> tuple:
        """Changes whenever the weight is replaced or updated in place, or the spec changes."""
        w = self.weight
        return (w.data_ptr(), w._version, w.device, w.dtype, self.spec)

    def _quant_input(self, x: torch.Tensor) -> torch.Tensor:
        return quantize_activation(x, self.spec.a_bits) if self.spec.a_bits != FULL_PRECISION else x

    def extra_repr(self) -> str:  # shown by print(model)
        base = super().extra_repr()  # type: ignore[misc]
        mode = "" if self.spec.weight_mode == "dorefa" else f", weight_mode={self.spec.weight_mode}"
        return f"{base}, w_bits={self.spec.w_bits}, a_bits={self.spec.a_bits}{mode}"

    def __getstate__(self):
        state = super().__getstate__()  # type: ignore[misc]
        state = dict(state)
        state["_wq_cache"] = None
        return state

    @classmethod
    def from_float(cls, module: nn.Module, spec: BitSpec | None = None):
        """A quantized layer with ``module``'s hyper-parameters, sharing its parameters.

        Example:
            >>> q = QuantLinear.from_float(nn.Linear(4, 2), BitSpec(2))
            >>> q.spec.w_bits
            2
        """
        float_cls = cls._float_cls
        if not isinstance(module, float_cls):
            raise TypeError(f"{cls.__name__}.from_float needs an nn.{float_cls.__name__}, got {type(module).__name__}")
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        _copy_state(module, new, skip=())
        new._init_quant(spec if spec is not None else getattr(module, "spec", None))
        return new

    def to_float(self, bake: bool = False) -> nn.Module:
        """The plain torch layer with the latent float weights.

        ``bake=True`` stores the quantized weights instead, so the float layer
        computes what the quantized one did on its weights.
        """
        float_cls = self._float_cls
        new = float_cls.__new__(float_cls)
        nn.Module.__init__(new)
        _copy_state(self, new, skip=("spec", "_wq_cache"))
        if bake:
            with torch.no_grad():
                new.weight = nn.Parameter(self.quantized_weight().detach().clone())
        return new


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """``nn.Conv2d`` with quantized weights and input.

    Example:
        >>> conv = QuantConv2d(3, 8, 3, spec=BitSpec(w_bits=4, a_bits=4))
        >>> conv(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 8, 6, 6])
    """

    _float_cls = nn.Conv2d

    def __init__(self, *args, spec: BitSpec | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.is_float:
            return nn.Conv2d.forward(self, x)
        return self._conv_forward(self._quant_input(x), self.quantized_weight(), self.bias)


class QuantLinear(_QuantMixin, nn.Linear):
    """``nn.Linear`` with quantized weights and input.

    Example:
        >>> fc = QuantLinear(16, 4, spec=BitSpec(w_bits=1))
        >>> fc(torch.rand(2, 16)).shape
        torch.Size([2, 4])
    """

    _float_cls = nn.Linear

    def __init__(self, *args, spec: BitSpec | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_quant(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.is_float:
            return nn.Linear.forward(self, x)
        return F.linear(self._quant_input(x), self.quantized_weight(), self.bias)


QUANT_LAYER_TYPES = {nn.Conv2d: QuantConv2d, nn.Linear: QuantLinear}


def is_quant_layer(module: nn.Module) -> bool:
    return isinstance(module, _QuantMixin)
