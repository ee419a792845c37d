"""Themes (plain dicts) and print sizes for figures.

A theme is a plain dict; ``apply_theme(fig, theme)`` applies it. ``THEMES``
holds three: ``"screen"`` (the default of every figure function: notebooks and
HTML reports), ``"paper"`` (fonts of 7-9 pt at print size) and ``"slides"``
(fonts of 16-22 pt on a 16:9 slide). ``for_print(fig, size, theme)`` re-lays a
figure out at a print size: ``"column"`` (3.5 in, a single column of a
two-column paper), ``"page"`` (7 in) or ``"slide"`` (10 x 5.625 in), or
``(width, height)`` in inches; ``plot.save(fig, stem, size="column")`` does
it before writing.

Colours: Okabe & Ito (2008) for series, Paul Tol's "muted" scheme for up to
ten classes.
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

#: CSS pixels per inch: plotly lays figures out in CSS pixels, and its PDFs map 96 of them to an inch
PX_PER_INCH = 96
#: points per inch
PT_PER_INCH = 72

#: the on-screen layout of figures (fonts in pixels, axes, margins), applied by ``apply_theme``.
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
    "marker_size": 9,
    "line_width": 2,
}

#: named themes; print themes give their font sizes in points (``font_pt``, ``title_pt``, ``tick_pt``)
THEMES = {
    "screen": PAPER,
    "paper": {**PAPER, "font_pt": 8, "title_pt": 9, "tick_pt": 7, "legend_pt": 7, "marker_size": 5, "line_width": 1.2,
              "margin_pt": {"l": 32, "r": 6, "t": 22, "b": 26}},
    "slides": {**PAPER, "font_pt": 18, "title_pt": 22, "tick_pt": 16, "legend_pt": 16, "marker_size": 12,
               "line_width": 3, "margin_pt": {"l": 70, "r": 20, "t": 50, "b": 55}},
}

#: print sizes in inches: (width, height); a height of None keeps the figure's own aspect ratio
PRINT_SIZES = {"column": (3.5, None), "page": (7.0, None), "slide": (10.0, 5.625)}


def theme(name_or_overrides: str | None = None, **overrides) -> dict:
    """A copy of a named theme (``"screen"`` by default) with some keys replaced, e.g. ``theme(width=800)``.

    Example:
        >>> theme("paper")["font_pt"], theme(width=800)["width"]
        (8, 800)
    """
    if name_or_overrides is None:
        name_or_overrides = "screen"
    if name_or_overrides not in THEMES:
        raise ValueError(f"theme must be one of {tuple(THEMES)}, got {name_or_overrides!r}")
    t = copy.deepcopy(THEMES[name_or_overrides])
    t.update(overrides)
    return t


def palette(t: dict, n: int) -> list[str]:
    """Colours for ``n`` series: the theme's own (Okabe-Ito, 8) or, for more, Tol's muted ten."""
    return t["colorway"] if n <= len(t["colorway"]) else t["class_colours"]


def resolve_theme(t) -> dict:
    """A theme dict from ``None`` (screen), a name or a dict."""
    if t is None:
        return PAPER
    if isinstance(t, str):
        return theme(t)
    if isinstance(t, dict):
        return t
    raise TypeError(f"theme must be a theme name {tuple(THEMES)} or a dict, got {type(t).__name__}")


def apply_theme(fig, t: dict | None = None, width: int | None = None, height: int | None = None):
    """Apply a theme dict to a figure in place and return it."""
    t = resolve_theme(t)
    fig.update_layout(
        template=t["template"], font=t["font"], colorway=t["colorway"], margin=t["margin"],
        width=width or t["width"], height=height or t["height"], title_font_size=t["title_font_size"],
        legend={"bgcolor": "rgba(255,255,255,0.8)", "font": {"size": t["font"]["size"] - 1}},
    )
    fig.update_xaxes(showgrid=True, gridcolor=t["grid_colour"], ticks="outside", mirror=False)
    fig.update_yaxes(gridcolor=t["grid_colour"], ticks="outside", mirror=False)
    fig.update_yaxes(showgrid=True, selector={"overlaying": None})
    return fig


def print_size(size, fig=None) -> tuple[float, float]:
    """``(width, height)`` in inches of a print size name or pair; a missing height keeps ``fig``'s aspect."""
    if isinstance(size, str):
        if size not in PRINT_SIZES:
            raise ValueError(f"size must be one of {tuple(PRINT_SIZES)} or (width, height) in inches, got {size!r}")
        w, h = PRINT_SIZES[size]
    else:
        try:
            w, h = (float(v) if v is not None else None for v in size)
        except (TypeError, ValueError):
            raise ValueError(f"size must be one of {tuple(PRINT_SIZES)} or (width, height) in inches, got "
                             f"{size!r}") from None
        if not w or w <= 0 or (h is not None and h <= 0):
            raise ValueError(f"size must be positive inches, got {size!r}")
    if h is None:
        fw = (fig.layout.width if fig is not None else None) or PAPER["width"]
        fh = (fig.layout.height if fig is not None else None) or PAPER["height"]
        meta = fig.layout.meta if fig is not None else None
        if isinstance(meta, dict):  # a legend added under the plot is laid out again at print size
            fh -= meta.get("legend_height", 0)
        h = w * fh / fw
    return w, h


def _pt(points: float) -> float:
    """Points as plotly pixels."""
    return points * PX_PER_INCH / PT_PER_INCH


def for_print(fig, size="column", t="paper"):
    """A copy of ``fig`` laid out at a print size, with the fonts of a print theme (at least 7 pt).

    Every font in the figure (title, axes, ticks, legend, annotations, trace
    text) gets the theme's size in points, markers and lines are thinned, and
    the width and height are set so that the PDF and SVG have the size asked
    for (plotly maps 96 of its pixels to an inch).

    Example:
        >>> import plotly.graph_objects as go
        >>> f = for_print(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])), "column")
        >>> f.layout.width, f.layout.font.size
        (336, 10.666666666666666)
    """
    t = resolve_theme(t)
    if "font_pt" not in t:
        raise ValueError("for_print needs a print theme ('paper' or 'slides'), not the screen theme")
    w, h = print_size(size, fig)
    out = copy.deepcopy(fig)
    font, title, tick, legend = _pt(t["font_pt"]), _pt(t["title_pt"]), _pt(t["tick_pt"]), _pt(t["legend_pt"])
    margin = {k: _pt(v) for k, v in t["margin_pt"].items()}
    if not out.layout.title.text:
        margin["t"] = _pt(8)
    out.update_layout(width=round(w * PX_PER_INCH), height=round(h * PX_PER_INCH), font_size=font,
                      title_font_size=title, legend_font_size=legend, margin=margin,
                      legend_title_font_size=legend)
    out.update_xaxes(tickfont_size=tick, title_font_size=font, title_standoff=2)
    out.update_yaxes(tickfont_size=tick, title_font_size=font, title_standoff=2)
    for ann in out.layout.annotations:  # subplot titles and labels: the body font, whatever they had on screen
        ann.font.size = font
    if out.layout.title.text and any(a.yref == "paper" and (a.y or 0) >= 0.99 for a in out.layout.annotations):
        margin["t"] += _pt(t["font_pt"] + 3)  # subplot titles above the top row: the title goes above them
        out.update_layout(margin={"t": margin["t"]})
    legend_items = [tr for tr in out.data if tr.showlegend is not False and tr.name]
    below = out.layout.legend.orientation == "h" and (out.layout.legend.y or 1) < 0
    if out.layout.showlegend is not False and len(legend_items) > 1 and (w < 4.5 or below):
        # the legend goes under the plot area, clear of the tick labels and the axis title: two entries to a row
        # when the longest name fits in half the width, else one
        longest = max(len(str(tr.name)) for tr in legend_items) * 0.55 * legend + _pt(40)
        per_row = int(max(1, min(5, (w * PX_PER_INCH - margin["l"] - margin["r"]) // longest)))
        rows = -(-len(legend_items) // per_row)
        extra = rows * legend * 1.5 + _pt(10) + (legend * 1.5 if out.layout.legend.title.text else 0)
        gap = _pt(t["tick_pt"] + t["font_pt"]) * 1.6 + _pt(6)  # tick labels, the axis title and some air
        plot_h = h * PX_PER_INCH - margin["t"] - margin["b"]
        out.update_layout(height=round(h * PX_PER_INCH + extra),
                          legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -gap / plot_h,
                                  "yanchor": "top", "entrywidth": 1 / per_row, "entrywidthmode": "fraction",
                                  "tracegroupgap": 0, "title": {"side": "top"}},
                          margin={"b": margin["b"] + extra})
    for trace in out.data:
        if hasattr(trace, "textfont"):
            trace.textfont.size = tick
        if getattr(trace, "marker", None) is not None and getattr(trace.marker, "size", None) is not None \
                and not isinstance(trace.marker.size, (tuple, list)):
            trace.marker.size = min(trace.marker.size, t["marker_size"])
        if getattr(trace, "line", None) is not None and getattr(trace.line, "width", None):
            trace.line.width = min(trace.line.width, t["line_width"])
    return out


def smallest_font_pt(fig) -> float:
    """The smallest font size used anywhere in ``fig``, in points (plotly's default 12 px where unset)."""
    sizes = []

    def walk(obj):
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key.endswith("font") and isinstance(value, dict) and "size" in value:
                    sizes.append(float(value["size"]))
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(fig.to_plotly_json())
    base = fig.layout.font.size or 12
    return min(sizes + [base]) * PT_PER_INCH / PX_PER_INCH
