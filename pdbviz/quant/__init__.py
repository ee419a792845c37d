"""The quantization core: quantizers, quantized layers, schedules, memory, packing.

This subpackage imports nothing else of pdbviz.
"""

from .convert import dequantize, quantizable_layers, quantize, schedule_of
from .layers import QuantConv2d, QuantLinear, is_quant_layer
from .memory import MemoryReport, MemorySummary, memory_report, memory_summary, memory_table
from .packing import PackedFormatError, load_packed, save_packed
from .quantizers import ALLOWED_BITS, dorefa_weight, quantize_activation, symmetric_weight
from .schedule import BitSchedule, BitSpec

__all__ = [
    "ALLOWED_BITS",
    "BitSchedule",
    "BitSpec",
    "MemoryReport",
    "MemorySummary",
    "PackedFormatError",
    "QuantConv2d",
    "QuantLinear",
    "dequantize",
    "dorefa_weight",
    "is_quant_layer",
    "load_packed",
    "memory_report",
    "memory_summary",
    "memory_table",
    "quantizable_layers",
    "quantize",
    "quantize_activation",
    "save_packed",
    "schedule_of",
    "symmetric_weight",
]
