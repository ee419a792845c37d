"""Layer-wise separability and sensitivity analysis, and bit allocation on the exact front.

Two families of measures, two names: ``SEPARABILITY_MEASURES`` (how separable
a layer's input is: the columns of ``separability_profile``) and
``SENSITIVITY_METRICS`` (every registered measure of ``sensitivity_metrics``,
the separability ones included; ``register_metric`` adds one). ``METRICS`` is
the older name of ``SEPARABILITY_MEASURES``.
"""

from ..quant import recalibrate_batchnorm
from .budgets import parse_budget, parse_budgets
from .cka import cka_profile, linear_cka
from .costs import interpolate_cost, metric_cost, predicted_loss
from .embed import EmbeddingCache, default_cache, embed_features, embed_layers, is_umap_warm, procrustes_align, warm_up_umap
from .features import collect_features
from .front import Front, allocate, nondominated, pareto_front
from .hessian import hessian_trace
from .metrics import (METRIC_INFO, SENSITIVITY_METRICS, MetricInfo, metric_info, register_metric, sensitivity_metrics,
                      unregister_metric)
from .registry import LocalBatch, Metric, NetworkBatch
from .sensitivity import layer_sensitivity, quantization_error, quantization_noise, quantized_at_scale, sqnr_db
from .separability import (SEPARABILITY_MEASURES, fisher_score, knn_accuracy, linear_probe_accuracy,
                           separability_profile, silhouette)
from .separability_allocation import allocate_bits, average_bits, difficulty

#: the older name of ``SEPARABILITY_MEASURES`` (the separability measures of ``separability_profile``).
METRICS = SEPARABILITY_MEASURES

__all__ = [
    "METRICS",
    "METRIC_INFO",
    "SENSITIVITY_METRICS",
    "SEPARABILITY_MEASURES",
    "EmbeddingCache",
    "Front",
    "LocalBatch",
    "Metric",
    "MetricInfo",
    "NetworkBatch",
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
    "register_metric",
    "sensitivity_metrics",
    "separability_profile",
    "silhouette",
    "sqnr_db",
    "unregister_metric",
    "warm_up_umap",
]
