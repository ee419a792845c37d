"""pdbviz: explore mixed-precision quantized networks with progressively decreasing bitwidth."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pdbviz")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from .analysis import (
    allocate_bits,
    average_bits,
    collect_features,
    embed_layers,
    fisher_score,
    layer_sensitivity,
    quantization_error,
    separability_profile,
    warm_up_umap,
)
from .checkpoint import load_model, save_model
from .data import Data, load_dataset
from .experiment import DEFAULT_SCHEDULES, compare, finetune
from .models import build_model
from .results import Results
from .train import Callback, DivergenceError, History, LambdaCallback, StopEvent, TrainState, evaluate, fit
from .quant import (
    BitSchedule,
    BitSpec,
    MemorySummary,
    PackedFormatError,
    QuantConv2d,
    QuantLinear,
    dequantize,
    dorefa_weight,
    load_packed,
    memory_summary,
    memory_table,
    quantizable_layers,
    quantize,
    quantize_activation,
    save_packed,
    schedule_of,
    symmetric_weight,
)



def __getattr__(name: str):
    """``pdbviz.plot`` and ``pdbviz.widgets`` load on first use (plotly and ipywidgets are heavy)."""
    if name in ("plot", "widgets"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'pdbviz' has no attribute {name!r}")


def explore(model="lenet", data="digits", **kwargs):
    """Open a BitAllocator (per-layer bit sliders, live memory, Train) on the embedded digits.

    Example (in a notebook cell)::

        import pdbviz
        pdbviz.explore()
    """
    from .widgets import explore as _explore

    return _explore(model, data, **kwargs)


__all__ = [
    "Callback",
    "DEFAULT_SCHEDULES",
    "Results",
    "Data",
    "DivergenceError",
    "History",
    "LambdaCallback",
    "StopEvent",
    "TrainState",
    "allocate_bits",
    "average_bits",
    "build_model",
    "collect_features",
    "compare",
    "embed_layers",
    "fisher_score",
    "layer_sensitivity",
    "quantization_error",
    "separability_profile",
    "warm_up_umap",
    "evaluate",
    "explore",
    "finetune",
    "fit",
    "load_dataset",
    "load_model",
    "save_model",
    "BitSchedule",
    "BitSpec",
    "MemorySummary",
    "PackedFormatError",
    "QuantConv2d",
    "QuantLinear",
    "__version__",
    "dequantize",
    "dorefa_weight",
    "load_packed",
    "memory_summary",
    "memory_table",
    "quantizable_layers",
    "quantize",
    "quantize_activation",
    "save_packed",
    "schedule_of",
    "symmetric_weight",
]
