"""Which weights of which module kinds pdbviz quantizes, and where each weight's input arrives.

A *weight kind* names, for a module type, its quantizable weight tensors and,
for each, the forward arguments that the weight multiplies (its *input*),
where pdbviz can quantize it. Kinds are matched with ``isinstance`` in
registration order, so subclasses (``NonDynamicallyQuantizableLinear``, a
weight-standardised ``Conv2d``) are covered by their base kind.

Built in: ``Linear``; ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``;
``Embedding`` and ``EmbeddingBag`` (inputs are indices: not quantizable);
``MultiheadAttention`` (``in_proj_weight``, or ``q_proj_weight``,
``k_proj_weight``, ``v_proj_weight`` when key and value have their own sizes;
its ``out_proj`` is a ``Linear`` that the attention uses functionally); and
the recurrent ``RNN``/``LSTM``/``GRU`` weights (their inputs, including the
hidden state, stay inside the fused kernel: not quantizable); and
transformers' ``Conv1D`` (GPT-2's projections: ``x @ weight + bias`` with
the weight stored as ``(in, out)``, the transpose of a ``Linear``'s; every
quantizer has one scale per tensor, so the orientation changes no value),
recognised by its class name and module, so transformers is never imported.
``register_weight_kind`` adds another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

#: where a weight's input is: (positional index, keyword name) pairs of its owner's forward
InputSlots = tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class WeightKind:
    """The quantizable weights of one module type.

    Attributes:
        module_type: matched with ``isinstance``.
        params: the module's quantizable parameter names (a function of the module).
        inputs: for a parameter name, the forward arguments it multiplies, or
            ``None`` when its input cannot be quantized from outside.
    """

    module_type: type
    params: Callable[[nn.Module], tuple[str, ...]]
    inputs: Callable[[str], InputSlots | None]
    match: Callable[[nn.Module], bool] | None = None

    def matches(self, module: nn.Module) -> bool:
        """True when ``module`` is of this kind (``match`` when given, else ``isinstance``)."""
        return self.match(module) if self.match is not None else isinstance(module, self.module_type)


_FIRST_ARG: InputSlots = ((0, "input"),)
_ATTENTION = {"in_proj_weight": ((0, "query"), (1, "key"), (2, "value")), "q_proj_weight": ((0, "query"),),
              "k_proj_weight": ((1, "key"),), "v_proj_weight": ((2, "value"),)}

def _is_hf_conv1d(module: nn.Module) -> bool:
    """transformers' ``Conv1D`` (GPT-2's projections), recognised without importing transformers."""
    cls = type(module)
    weight = module._parameters.get("weight") if "weight" in module._parameters else \
        getattr(getattr(module, "parametrizations", None), "weight", None)
    return any(c.__name__ == "Conv1D" and c.__module__.startswith("transformers") for c in cls.__mro__) \
        and isinstance(getattr(module, "nf", None), int) and weight is not None


#: the registered weight kinds (``register_weight_kind`` adds to it), consulted in order.
WEIGHT_KINDS: list[WeightKind] = [
    WeightKind(nn.MultiheadAttention,
               lambda m: ("in_proj_weight",) if m.in_proj_weight is not None
               else ("q_proj_weight", "k_proj_weight", "v_proj_weight"),
               _ATTENTION.get),
    WeightKind(nn.RNNBase, lambda m: tuple(n for n in m._flat_weights_names if n.startswith("weight_")),
               lambda name: None),
    WeightKind(nn.Embedding, lambda m: ("weight",), lambda name: None),
    WeightKind(nn.EmbeddingBag, lambda m: ("weight",), lambda name: None),
    WeightKind(nn.modules.conv._ConvNd, lambda m: ("weight",), lambda name: _FIRST_ARG),
    WeightKind(nn.Linear, lambda m: ("weight",), lambda name: _FIRST_ARG),
    WeightKind(nn.Module, lambda m: ("weight",), lambda name: _FIRST_ARG, _is_hf_conv1d),
]


def register_weight_kind(module_type: type, params: Callable[[nn.Module], tuple[str, ...]] | tuple[str, ...],
                         inputs: Callable[[str], InputSlots | None] | None = None) -> WeightKind:
    """Teach pdbviz to quantize the weights of another module type.

    Args:
        module_type: the module class (subclasses match too).
        params: its quantizable parameter names, or a function of the module returning them.
        inputs: for each parameter name, the ``(position, keyword)`` pairs of
            the forward arguments it multiplies, or None (inputs not quantizable).

    Example::

        register_weight_kind(nn.Bilinear, ("weight",))
    """
    if not isinstance(module_type, type) or not issubclass(module_type, nn.Module):
        raise TypeError(f"module_type must be an nn.Module subclass, got {module_type!r}")
    names = tuple(params) if not callable(params) else None
    kind = WeightKind(module_type, params if names is None else (lambda m: names),
                      inputs if inputs is not None else (lambda name: None))
    WEIGHT_KINDS.insert(0, kind)
    return kind


def kind_of(module: nn.Module) -> WeightKind | None:
    """The first registered kind that ``module`` is an instance of, or None."""
    for kind in WEIGHT_KINDS:
        if kind.matches(module):
            return kind
    return None
