"""Jupyter dashboards (ipywidgets 8 + plotly FigureWidget). Imported on demand:
``from pdbviz.widgets import BitAllocator``."""

from .allocator import BitAllocator, explore
from .explorer import SeparabilityExplorer
from .playground import QuantizerPlayground
from .sweep import SweepDashboard

__all__ = ["BitAllocator", "QuantizerPlayground", "SeparabilityExplorer", "SweepDashboard", "explore"]
