"""Layer-wise separability analysis and separability-guided bit allocation."""

from .allocate import allocate_bits, average_bits, difficulty, parse_budget
from .embed import EmbeddingCache, default_cache, embed_features, embed_layers, is_umap_warm, procrustes_align, warm_up_umap
from .features import collect_features
from ..quant import recalibrate_batchnorm
from .sensitivity import layer_sensitivity, quantization_error, quantization_noise, sqnr_db
from .separability import METRICS, fisher_score, knn_accuracy, linear_probe_accuracy, separability_profile, silhouette

__all__ = [
    "METRICS",
    "EmbeddingCache",
    "allocate_bits",
    "average_bits",
    "collect_features",
    "default_cache",
    "difficulty",
    "embed_features",
    "embed_layers",
    "fisher_score",
    "is_umap_warm",
    "knn_accuracy",
    "layer_sensitivity",
    "linear_probe_accuracy",
    "parse_budget",
    "procrustes_align",
    "quantization_error",
    "quantization_noise",
    "recalibrate_batchnorm",
    "separability_profile",
    "silhouette",
    "sqnr_db",
    "warm_up_umap",
]
