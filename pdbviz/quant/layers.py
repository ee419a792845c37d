"""How a weight is quantized in place: a parametrization (``torch.nn.utils.parametrize``).

``WeightQuant`` is registered as a parametrization of a weight tensor, so every
read of ``module.weight`` (the module's own forward, a parent's functional
call, a tied or aliased use) sees the quantized tensor, the module keeps its
own class and forward (subclasses, ``weight_norm`` chains), and ties and
aliases stay tied. Where the weight's input is observable, a forward
pre-hook on the owner quantizes that input too. At full precision a weight
with no input bits is left unparametrized, so the float model is untouched.

In eval mode, with autograd off, the quantized weight is computed once and
reused while the float weight holds the same values (compared element by
element on every call, which costs a read of the weight: a version counter
would miss a write through ``.data``) and the spec is the same; never while
tracing, compiling or exporting.

``QuantConv2d`` and ``QuantLinear`` are conveniences: the float layers with a
``WeightQuant`` on their weight.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize

from .kinds import InputSlots
from .quantizers import FULL_PRECISION, activation_quantizer, weight_quantizer
from .schedule import BitSpec
from .ste import value_of


def _tracing() -> bool:
    from .forward_trace import discovering

    return bool(torch.jit.is_tracing() or torch.compiler.is_compiling() or discovering())


class WeightQuant(nn.Module):
    """The parametrization pdbviz registers on a weight, holding its ``BitSpec``.

    Args:
        spec: the bit-widths and modes of the weight and of its input.
        inputs: the owner's forward arguments the weight multiplies (``None``
            when its input cannot be quantized; then ``spec.a_bits`` must be 32).
    """

    def __init__(self, spec: BitSpec, inputs: InputSlots | None = None):
        super().__init__()
        self.inputs = inputs
        self.set_spec(spec)

    def set_spec(self, spec: BitSpec) -> None:
        """Change the bit-widths in place (quantizers with learned state are rebuilt).

        The owners' input hooks follow with ``sync_input_hook`` (``quantize`` calls it).
        """
        if not isinstance(spec, BitSpec):
            raise TypeError(f"spec must be a BitSpec, got {type(spec).__name__}")
        if spec.a_bits != FULL_PRECISION and self.inputs is None:
            raise ValueError("this weight's input cannot be quantized; its a_bits must be 32")
        self.spec = spec
        self.weight_quantizer = None if spec.w_bits == FULL_PRECISION else \
            weight_quantizer(spec.weight_mode)(spec.w_bits)
        self.input_quantizer = None if spec.a_bits == FULL_PRECISION else \
            activation_quantizer(spec.act_mode)(spec.a_bits)
        self._cache: tuple | None = None
        self._pin: tuple | None = None

    def _key(self, w: torch.Tensor) -> tuple:
        return (w.shape, w.device, w.dtype, id(self.weight_quantizer))

    def _pinned(self, w: torch.Tensor) -> torch.Tensor | None:
        """The stored values while the weight they were loaded for is unchanged (see ``pin``), else None."""
        if self._pin is None:
            return None
        originals, snapshots, values = self._pin
        if w.shape != values.shape or not _unchanged(originals, snapshots):
            self._pin = None  # an optimizer step, load_state_dict, an assignment or a .data write changed it
            return None
        if values.device != w.device or values.dtype != w.dtype:
            values = values.to(w.device, w.dtype)
            self._pin = (originals, snapshots, values)
        return values

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        q = self.weight_quantizer
        if q is None:
            return w
        pinned = self._pinned(w)
        if self.training or not isinstance(w, nn.Parameter) or (torch.is_grad_enabled() and w.requires_grad) \
                or _tracing():
            self._cache = None
            if pinned is not None and torch.is_grad_enabled() and w.requires_grad:
                return value_of(q(w), pinned)  # the stored values exactly, with the quantizer's own gradient
            return pinned if pinned is not None else q(w)
        if pinned is not None:
            return pinned
        key = self._key(w)
        if self._cache is None or self._cache[0] != key or not torch.equal(self._cache[1], w):
            with torch.no_grad():
                self._cache = (key, w.detach().clone(), q(w))
        return self._cache[2]

    def right_inverse(self, value: torch.Tensor) -> torch.Tensor:
        """Identity: registering keeps the float weight as it is (loading sets a latent weight itself)."""
        return value

    def pin(self, originals: tuple[torch.Tensor, ...], wq: torch.Tensor) -> None:
        """Compute with exactly ``wq`` as long as the stored tensors ``originals`` (the weight, or the
        tensors a ``weight_norm`` computes it from) are unchanged.

        A packed file stores the quantized values; the float weight that
        loading writes back (``WeightQuantizer.latent``) lands on the same
        codes but, for quantizers whose scale depends on the weight, not always
        on the same scale to the last bit. The pin makes a loaded model compute
        exactly what was saved, in eval and in training (where the gradient is
        still the quantizer's own), until an optimizer step, ``load_state_dict``
        or an assignment changes the weight. Deep copies keep it.
        """
        self._pin = (tuple(originals), tuple(o.detach().clone() for o in originals),
                     wq.to(originals[0].device, originals[0].dtype))

    def held_values(self) -> tuple[torch.Tensor, ...]:
        """Tensors computed earlier from the weight that ``forward`` reads: its eval cache and pinned values, and
        the copies of the float weight they are checked against."""
        held = []
        if self._cache is not None:
            held.extend(self._cache[1:])
        if self._pin is not None:
            held.extend((*self._pin[1], self._pin[2]))
        return tuple(held)

    def input_hook(self, module: nn.Module, args: tuple, kwargs: dict):
        """Forward pre-hook of the owner: quantize the arguments this weight multiplies."""
        q = self.input_quantizer
        if q is None or not self.inputs:
            return None
        args, kwargs, done = list(args), dict(kwargs), {}
        for pos, name in self.inputs:
            if pos < len(args):
                args[pos] = _quantized(args[pos], q, done)
            elif name in kwargs:
                kwargs[name] = _quantized(kwargs[name], q, done)
        return tuple(args), kwargs

    def __getstate__(self):
        state = dict(super().__getstate__())
        state["_cache"] = state["_pin"] = None
        return state

    def __deepcopy__(self, memo):
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = None if key in ("_cache", "_pin") else copy.deepcopy(value, memo)
        if self._pin is not None and _unchanged(*self._pin[:2]):
            originals = tuple(copy.deepcopy(o, memo) for o in self._pin[0])  # the copy's own stored tensors
            new._pin = (originals, tuple(o.detach().clone() for o in originals), self._pin[2].clone())
        return new

    def extra_repr(self) -> str:
        s = self.spec
        return f"w_bits={s.w_bits}, a_bits={s.a_bits}, weight_mode={s.weight_mode}"


def _unchanged(tensors: tuple[torch.Tensor, ...], snapshots: tuple[torch.Tensor, ...]) -> bool:
    """True when each tensor still holds its snapshot's values (compared, not versioned: a ``.data`` write
    changes no version counter)."""
    return all(t.shape == s.shape and torch.equal(t.detach(), s) for t, s in zip(tensors, snapshots))


def _quantized(x, q, done: dict):
    """Quantize ``x`` once per call (self-attention passes one tensor as query, key and value)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return x
    if id(x) not in done:
        done[id(x)] = q(x)
    return done[id(x)]


def weight_quant(module: nn.Module, pname: str = "weight") -> WeightQuant | None:
    """The ``WeightQuant`` on ``module.<pname>``, or None."""
    if not parametrize.is_parametrized(module, pname):
        return None
    for p in module.parametrizations[pname]:
        if isinstance(p, WeightQuant):
            return p
    return None


def is_quant_layer(module: nn.Module) -> bool:
    """True when some weight of ``module`` carries a ``WeightQuant``."""
    plists = getattr(module, "parametrizations", None)
    return plists is not None and any(isinstance(p, WeightQuant) for plist in plists.values() for p in plist)


def _own_class(module: nn.Module) -> None:
    """Give a parametrized module a class of its own before its properties change.

    ``torch.nn.utils.parametrize`` keeps a parametrized module's properties on
    a class made for it, which a deep copy shares: adding or removing a
    parametrization on the copy would change the original too.
    """
    if parametrize.is_parametrized(module):
        cls = module.__class__
        module.__class__ = type(cls.__name__, cls.__bases__, dict(cls.__dict__))


def attach(module: nn.Module, pname: str, wq: WeightQuant) -> None:
    """Register ``wq`` on ``module.<pname>`` (after any parametrization already there) and its input hook."""
    _own_class(module)
    parametrize.register_parametrization(module, pname, wq, unsafe=True)
    sync_input_hook(module, wq)


def sync_input_hook(module: nn.Module, wq: WeightQuant) -> None:
    """Give ``module`` the forward pre-hook of ``wq`` exactly when ``wq`` quantizes an input.

    Without input bits there is no hook at all, so torch's fused paths that a
    hook disables (``nn.TransformerEncoderLayer``'s fast path in eval) stay.
    Call it after changing a ``WeightQuant``'s spec (``quantize`` and the
    layers' ``set_spec`` do).
    """
    _remove_input_hook(module, wq)
    if wq.inputs and wq.input_quantizer is not None:
        module.register_forward_pre_hook(wq.input_hook, with_kwargs=True)


def _remove_input_hook(module: nn.Module, wq: WeightQuant) -> None:
    for key, hook in list(module._forward_pre_hooks.items()):
        if getattr(hook, "__self__", None) is wq:
            del module._forward_pre_hooks[key]
            module._forward_pre_hooks_with_kwargs.pop(key, None)


def detach(module: nn.Module, pname: str, value: torch.Tensor | None = None) -> None:
    """Remove pdbviz's quantization from ``module.<pname>``; with ``value``, set the weight to it (baking).

    The user's own parametrizations (``weight_norm``...) stay. To bake a
    shared weight, compute every value before detaching any (``dequantize``
    does): the owners share one stored tensor.
    """
    wq = weight_quant(module, pname)
    if wq is None:
        return
    _remove_input_hook(module, wq)
    _own_class(module)
    plist = module.parametrizations[pname]
    kept = [p for p in plist if p is not wq]
    if not kept:
        parametrize.remove_parametrizations(module, pname, leave_parametrized=False)
        if value is not None:
            with torch.no_grad():
                getattr(module, pname).copy_(value)
        return
    plist._modules.clear()
    for i, p in enumerate(kept):
        plist._modules[str(i)] = p
    if value is not None:
        plist.right_inverse(value)


class _QuantLayer:
    """``from_float`` / ``to_float`` for the convenience layers."""

    _float_cls: type[nn.Module]

    @property
    def spec(self) -> BitSpec:
        """The layer's bit-widths and modes."""
        return weight_quant(self).spec

    def set_spec(self, spec: BitSpec) -> None:
        """Change the layer's bit-widths in place."""
        wq = weight_quant(self)
        wq.set_spec(spec)
        sync_input_hook(self, wq)

    def quantized_weight(self) -> torch.Tensor:
        """The weight the forward pass uses (the float weight at 32 bits)."""
        return self.weight

    @classmethod
    def from_float(cls, module: nn.Module, spec: BitSpec | None = None):
        """A quantized layer with ``module``'s hyper-parameters, sharing its parameters.

        Example:
            >>> q = QuantLinear.from_float(nn.Linear(4, 2), BitSpec(2))
            >>> q.spec.w_bits
            2
        """
        if not isinstance(module, cls._float_cls):
            raise TypeError(f"{cls.__name__}.from_float needs an nn.{cls._float_cls.__name__}, got "
                            f"{type(module).__name__}")
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        for key, value in module.__dict__.items():  # share parameters, copy the dicts (hooks stay apart)
            if key not in ("_pdbviz_layout",):
                new.__dict__[key] = type(value)(value) if isinstance(value, dict) else value
        attach(new, "weight", WeightQuant(spec if spec is not None else BitSpec(), ((0, "input"),)))
        return new

    def to_float(self, bake: bool = False) -> nn.Module:
        """The plain torch layer, with the latent float weight or (``bake=True``) the quantized one."""
        new = copy.deepcopy(self)
        with torch.no_grad():
            value = new.weight.detach().clone() if bake else None
        detach(new, "weight", value)
        new.__class__ = self._float_cls
        return new


class QuantConv2d(_QuantLayer, nn.Conv2d):
    """``nn.Conv2d`` with quantized weights and input.

    Example:
        >>> conv = QuantConv2d(3, 8, 3, spec=BitSpec(w_bits=4, a_bits=4))
        >>> conv(torch.rand(1, 3, 8, 8)).shape
        torch.Size([1, 8, 6, 6])
    """

    _float_cls = nn.Conv2d

    def __init__(self, *args, spec: BitSpec | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        attach(self, "weight", WeightQuant(spec if spec is not None else BitSpec(), ((0, "input"),)))


class QuantLinear(_QuantLayer, nn.Linear):
    """``nn.Linear`` with quantized weights and input.

    Example:
        >>> fc = QuantLinear(16, 4, spec=BitSpec(w_bits=1))
        >>> fc(torch.rand(2, 16)).shape
        torch.Size([2, 4])
    """

    _float_cls = nn.Linear

    def __init__(self, *args, spec: BitSpec | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        attach(self, "weight", WeightQuant(spec if spec is not None else BitSpec(), ((0, "input"),)))
