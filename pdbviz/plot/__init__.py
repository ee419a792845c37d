"""Figures for papers and notebooks. Each function returns a ``plotly.graph_objects.Figure``.

``pdbviz.plot`` imports plotly only when a figure is made.
"""

from .export import FORMATS, StaticExportError, html_document, save, save_many, static_export_available
from .figures import (bits_figure, memory_figure, pareto_figure, pareto_frontier, profile_figure, quant_error_figure,
                      staircase_figure, training_curves, umap_grid)
from .interactions import interactions_figure
from .study import metric_study_figure
from .theme import (BIT_COLOURS, OKABE_ITO, PAPER, PRINT_SIZES, THEMES, TOL_MUTED, apply_theme, for_print,
                    smallest_font_pt, theme)

__all__ = [
    "BIT_COLOURS", "FORMATS", "OKABE_ITO", "PAPER", "PRINT_SIZES", "StaticExportError", "THEMES", "TOL_MUTED",
    "apply_theme", "bits_figure", "for_print", "smallest_font_pt",
    "html_document", "interactions_figure", "memory_figure", "metric_study_figure", "pareto_figure", "pareto_frontier", "profile_figure", "quant_error_figure",
    "save", "save_many", "staircase_figure", "static_export_available", "theme", "training_curves", "umap_grid",
]
