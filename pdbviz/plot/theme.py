"""One colourblind-safe theme, sized for a two-column paper.

A theme is a plain dict; ``apply_theme(fig, theme)`` applies it. Colours:
Okabe & Ito (2008) for series, Paul Tol's "muted" scheme for up to ten classes.
"""

from __future__ import annotations

import copy

#: the Okabe-Ito palette: eight colours that colourblind readers can tell apart.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
#: Paul Tol's muted palette (ten colours, colourblind-safe), for figures with more series.
TOL_MUTED = ["#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499",
             "#555555"]
#: colour of each bit-width, light (many bits) to dark (few bits) in one hue (viridis-like, colourblind-safe)
BIT_COLOURS = {32: "#BBBBBB", 8: "#FDE725", 7: "#B5DE2B", 6: "#6ECE58", 5: "#35B779", 4: "#1F9E89", 3: "#26828E",
               2: "#31688E", 1: "#3E4989"}

#: the plotly layout of paper figures (fonts, axes, margins), applied by ``apply_theme``.
PAPER = {
    "font": {"family": "Helvetica, Arial, sans-serif", "size": 12, "color": "#222222"},
    "title_font_size": 13,
    "colorway": OKABE_ITO,
    "class_colours": TOL_MUTED,
    "width": 560,
    "height": 380,
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    "template": "simple_white",
    "grid_colour": "#E5E5E5",
}


def theme(**overrides) -> dict:
    """A copy of the paper theme with some keys replaced, e.g. ``theme(width=800)``."""
    t = copy.deepcopy(PAPER)
    t.update(overrides)
    return t


def apply_theme(fig, t: dict | None = None, width: int | None = None, height: int | None = None):
    """Apply a theme dict to a figure in place and return it."""
    t = PAPER if t is None else t
    fig.update_layout(
        template=t["template"], font=t["font"], colorway=t["colorway"], margin=t["margin"],
        width=width or t["width"], height=height or t["height"], title_font_size=t["title_font_size"],
        legend={"bgcolor": "rgba(255,255,255,0.8)", "font": {"size": t["font"]["size"] - 1}},
    )
    fig.update_xaxes(showgrid=True, gridcolor=t["grid_colour"], ticks="outside", mirror=False)
    fig.update_yaxes(gridcolor=t["grid_colour"], ticks="outside", mirror=False)
    fig.update_yaxes(showgrid=True, selector={"overlaying": None})
    return fig
