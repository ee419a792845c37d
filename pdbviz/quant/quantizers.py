"""Quantizers: the registries and every built-in weight and input quantizer, in one namespace.

A quantizer is one registered class that carries its formula (docstring), its
label, its minimum bit-width, its number of levels and its integer grid
(``registry``). The built-ins live in ``weight_quantizers`` (DoReFa-Net, the
symmetric family with TWN at 2 bits, LSQ) and ``activation_quantizers``
(DoReFa-Net, PACT); this module gathers them for code that imports from one
place.

Example:
    >>> sorted(WEIGHT_QUANTIZERS), sorted(ACTIVATION_QUANTIZERS)
    (['dorefa', 'lsq', 'symmetric'], ['dorefa', 'pact'])
    >>> [WEIGHT_QUANTIZERS["symmetric"].levels(k) for k in (1, 2, 3)]
    [2, 3, 7]
"""

from .activation_quantizers import DoReFaActivation, PACTActivation, quantize_activation
from .grid import IntegerGrid, OffGridError
from .registry import (ACTIVATION_QUANTIZERS, ALLOWED_BITS, FULL_PRECISION, WEIGHT_QUANTIZERS, ActivationQuantizer,
                       WeightQuantizer, activation_quantizer, check_bits, register_activation_quantizer,
                       register_weight_quantizer, weight_quantizer)
from .weight_quantizers import (TWN_THRESHOLD, DoReFaWeight, LSQWeight, SymmetricWeight, dorefa_weight, symmetric_step,
                                symmetric_weight)

__all__ = [
    "ACTIVATION_QUANTIZERS",
    "ALLOWED_BITS",
    "FULL_PRECISION",
    "TWN_THRESHOLD",
    "WEIGHT_QUANTIZERS",
    "ActivationQuantizer",
    "DoReFaActivation",
    "DoReFaWeight",
    "IntegerGrid",
    "LSQWeight",
    "OffGridError",
    "PACTActivation",
    "SymmetricWeight",
    "WeightQuantizer",
    "activation_quantizer",
    "check_bits",
    "dorefa_weight",
    "quantize_activation",
    "register_activation_quantizer",
    "register_weight_quantizer",
    "symmetric_step",
    "symmetric_weight",
    "weight_quantizer",
]
