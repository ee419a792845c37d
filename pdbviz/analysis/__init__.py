"""Layer-wise separability and sensitivity analysis, and bit allocation on the exact front."""

from .allocate import allocate_bits, average_bits, difficulty, parse_budget
from .cka import cka_profile, linear_cka
from .costs import interpolate_cost, metric_cost, predicted_loss
from .embed import EmbeddingCache, default_cache, embed_features, embed_layers, is_umap_warm, procrustes_align, warm_up_umap
from .features import collect_features
from .front import Front, allocate, pareto_front, parse_budgets
from .hessian import hessian_trace
from ..quant import recalibrate_batchnorm
from .metrics import METRIC_INFO, MetricInfo, metric_info, sensitivity_metrics
from .metrics import METRICS as _SENSITIVITY
from .pareto import nondominated
from .sensitivity import layer_sensitivity, quantization_error, quantization_noise, quantized_at_scale, sqnr_db
from .separability import METRICS, fisher_score, knn_accuracy, linear_probe_accuracy, separability_profile, silhouette

#: the names of the measures of ``sensitivity_metrics`` (``METRICS`` are the separability ones).
SENSITIVITY_METRICS = _SENSITIVITY

__all__ = [
    "METRICS",
    "METRIC_INFO",
    "SENSITIVITY_METRICS",
    "EmbeddingCache",
    "Front",
    "MetricInfo",
    "allocate",
    "allocate_bits",
    "average_bits",
    "cka_profile",
    "collect_features",
    "default_cache",
    "difficulty",
    "embed_features",
    "embed_layers",
    "fisher_score",
    "hessian_trace",
    "interpolate_cost",
    "is_umap_warm",
    "knn_accuracy",
    "layer_sensitivity",
    "linear_cka",
    "linear_probe_accuracy",
    "metric_cost",
    "metric_info",
    "nondominated",
    "pareto_front",
    "parse_budget",
    "parse_budgets",
    "predicted_loss",
    "procrustes_align",
    "quantization_error",
    "quantization_noise",
    "quantized_at_scale",
    "recalibrate_batchnorm",
    "sensitivity_metrics",
    "separability_profile",
    "silhouette",
    "sqnr_db",
    "warm_up_umap",
]
