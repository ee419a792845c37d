"""The quantization core: quantizers, weight kinds, discovery, schedules, memory, packing.

This subpackage imports nothing else of pdbviz but its leaf modules.
"""

from .convert import dequantize, effective_schedule, float_weight, quantize, recalibrate_batchnorm, schedule_of
from .discovery import FloatTensor, ModelLayout, WeightEntry, discover, quantizable_layers
from .grid import IntegerGrid, OffGridError
from .kinds import WEIGHT_KINDS, WeightKind, register_weight_kind
from .layers import QuantConv2d, QuantLinear, WeightQuant, is_quant_layer, weight_quant
from .memory import MemoryReport, MemorySummary, memory_report, memory_summary, memory_table
from .protocol import ModelInfo, model_info
from .packing import PackedFormatError, load_packed, save_packed
from .presets import NamedSchedule
from .quantizers import (ACTIVATION_QUANTIZERS, ALLOWED_BITS, WEIGHT_QUANTIZERS, ActivationQuantizer, WeightQuantizer,
                         activation_quantizer, dorefa_weight, quantize_activation, register_activation_quantizer,
                         register_weight_quantizer, symmetric_weight, weight_quantizer)
from .schedule import BitSchedule, BitSpec, input_bits_allowed

__all__ = [
    "ACTIVATION_QUANTIZERS",
    "ALLOWED_BITS",
    "ActivationQuantizer",
    "BitSchedule",
    "BitSpec",
    "FloatTensor",
    "IntegerGrid",
    "MemoryReport",
    "MemorySummary",
    "ModelInfo",
    "ModelLayout",
    "NamedSchedule",
    "OffGridError",
    "PackedFormatError",
    "QuantConv2d",
    "QuantLinear",
    "WEIGHT_KINDS",
    "WEIGHT_QUANTIZERS",
    "WeightEntry",
    "WeightKind",
    "WeightQuant",
    "WeightQuantizer",
    "activation_quantizer",
    "dequantize",
    "discover",
    "dorefa_weight",
    "effective_schedule",
    "float_weight",
    "input_bits_allowed",
    "is_quant_layer",
    "load_packed",
    "memory_report",
    "memory_summary",
    "memory_table",
    "model_info",
    "quantizable_layers",
    "quantize",
    "quantize_activation",
    "recalibrate_batchnorm",
    "register_activation_quantizer",
    "register_weight_kind",
    "register_weight_quantizer",
    "save_packed",
    "schedule_of",
    "symmetric_weight",
    "weight_quant",
    "weight_quantizer",
]
