"""pdbviz: explore mixed-precision quantized networks with progressively decreasing bitwidth.

The top-level names load on first use (Scientific Python SPEC 1, through
``lazy_loader``): ``import pdbviz`` imports nothing heavy, ``import
pdbviz.plot`` loads no training code, and ``pdbviz.fit`` still works. The
table below is the one place that says which submodule holds each name.
"""

import lazy_loader as _lazy

from ._version import __version__

_SUBMODULE_NAMES = {
    "_notebooks": ["output_folder"],
    "analysis": ["allocate", "allocate_bits", "average_bits", "cka_profile", "collect_features", "embed_layers",
                 "fisher_score", "hessian_trace", "layer_sensitivity", "linear_cka", "pareto_front",
                 "predicted_loss", "quantization_error", "sensitivity_metrics", "separability_profile",
                 "warm_up_umap"],
    "analysis.interactions": ["Interactions", "interactions"],
    "auditing": ["AuditReport", "audit", "audit_onnx", "audit_packed"],
    "checkpoint": ["load_model", "save_model"],
    "data": ["Data", "as_data", "load_dataset"],
    "experiment": ["DEFAULT_SCHEDULES", "compare", "finetune"],
    "inference": ["calibrate", "evaluate"],
    "models": ["build_model"],
    "results": ["Results"],
    "study": ["MetricStudy", "metric_study"],
    "sweeps": ["sweep"],
    "train": ["Callback", "DivergenceError", "History", "LambdaCallback", "StopEvent", "TrainState", "fit"],
    "quant": ["BitSchedule", "BitSpec", "MemoryReport", "MemorySummary", "PackedFormatError", "QuantConv2d",
              "QuantLinear", "dequantize", "dorefa_weight", "load_packed", "memory_report", "memory_summary",
              "memory_table", "quantizable_layers", "quantize", "quantize_activation", "save_packed",
              "schedule_of", "symmetric_weight"],
    "widgets": ["explore"],
}

# ``pdbviz.sweep`` is the function; ``pdbviz.sweeps`` holds its machinery (``RunRecord``, ``RunStore``...).
_SUBPACKAGES = ["analysis", "checkpoint", "data", "experiment", "export", "inference", "models", "plot", "quant",
                "results", "study", "sweeps", "train", "widgets"]
__getattr__, _lazy_dir, _lazy_all = _lazy.attach(__name__, submodules=_SUBPACKAGES, submod_attrs=_SUBMODULE_NAMES)
__all__ = sorted({*_lazy_all, "__version__"} - set(_SUBPACKAGES))


def __dir__() -> list[str]:
    return sorted({*_lazy_dir(), "__version__"})
