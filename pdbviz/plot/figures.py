"""One function per figure. Each takes results (DataFrames, arrays) first and returns a
``plotly.graph_objects.Figure``; none calls ``.show()`` or imports training code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from .theme import BIT_COLOURS, PAPER, apply_theme


def _go():
    try:
        import plotly.graph_objects as go
    except ImportError as err:  # pragma: no cover - plotly is a dependency
        raise ImportError("pdbviz.plot needs plotly: pip install plotly") from err
    return go


def _need(df, columns, name):
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name} lacks columns {missing}; it has {list(df.columns)}")


def _bits_of(schedule) -> dict[str, int]:
    """A BitSchedule-like (``.layers`` and ``.w_bits``) or a mapping layer -> bits."""
    if schedule is None:
        return {}
    if hasattr(schedule, "layers") and hasattr(schedule, "w_bits"):
        return dict(zip(schedule.layers, schedule.w_bits))
    if isinstance(schedule, Mapping):
        return {k: int(getattr(v, "w_bits", v)) for k, v in schedule.items()}
    raise TypeError("schedule must be a BitSchedule or a mapping layer -> bits")


def profile_figure(profile: pd.DataFrame, metric: str = "fisher", schedule=None, title: str | None = None,
                   theme: dict | None = None):
    """Separability by depth (one line per ``schedule`` column value), with a schedule's bits as bars.

    ``profile`` is ``separability_profile(...)`` or ``Results.profiles``.
    """
    go = _go()
    from plotly.subplots import make_subplots

    _need(profile, ["layer", "depth", metric], "profile")
    t = theme or PAPER
    bits = _bits_of(schedule)
    fig = make_subplots(specs=[[{"secondary_y": bool(bits)}]])
    groups = profile.groupby("schedule", sort=False) if "schedule" in profile else [(None, profile)]
    order = list(dict.fromkeys(profile.sort_values("depth").layer))
    for i, (name, df) in enumerate(groups):
        df = df.sort_values("depth")
        fig.add_trace(go.Scatter(x=df.layer, y=df[metric], mode="lines+markers", name=str(name or metric),
                                 line={"color": t["colorway"][i % len(t["colorway"])], "width": 2},
                                 hovertemplate="%{x}: %{y:.3f}<extra>" + str(name or metric) + "</extra>"),
                      secondary_y=False)
    if bits:
        layers = [lay for lay in order if lay in bits]
        fig.add_trace(go.Bar(x=layers, y=[bits[lay] for lay in layers], name="weight bits", opacity=0.35,
                             marker_color=[BIT_COLOURS.get(bits[lay], "#888") for lay in layers],
                             text=[bits[lay] for lay in layers], textposition="outside"), secondary_y=True)
        fig.update_yaxes(title_text="weight bits", secondary_y=True, range=[0, 9.5], showgrid=False,
                         tickmode="array", tickvals=[1, 2, 4, 8], ticks="outside")
        fig.data = fig.data[::-1]  # bars behind lines
    label = {"fisher": "Fisher criterion tr(S_B)/tr(S_W)", "probe": "linear-probe accuracy",
             "knn": "k-NN accuracy", "silhouette": "silhouette"}.get(metric, metric)
    fig.update_yaxes(title_text=label, secondary_y=False, type="log" if metric == "fisher" else None)
    fig.update_xaxes(title_text="input of layer (depth →)", categoryorder="array", categoryarray=order)
    fig.update_layout(title=title or "Class separability by depth")
    return apply_theme(fig, t)


def umap_grid(embedding: pd.DataFrame, classes: Sequence[str] | None = None, cols: int | None = None,
              title: str | None = None, theme: dict | None = None, marker_size: int = 4):
    """UMAP small multiples, one panel per layer, points coloured by class."""
    go = _go()
    from plotly.subplots import make_subplots

    _need(embedding, ["layer", "depth", "label", "x", "y"], "embedding")
    t = theme or PAPER
    layers = list(dict.fromkeys(embedding.sort_values("depth", kind="stable").layer))
    cols = cols or min(len(layers), 3)
    rows = int(np.ceil(len(layers) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=layers, horizontal_spacing=0.03, vertical_spacing=0.08)
    labels = sorted(embedding.label.unique())
    palette = t["class_colours"]
    for i, layer in enumerate(layers):
        df = embedding[embedding.layer == layer]
        r, c = i // cols + 1, i % cols + 1
        for j, lab in enumerate(labels):
            part = df[df.label == lab]
            name = classes[lab] if classes is not None and int(lab) < len(classes) else str(lab)
            fig.add_trace(go.Scatter(x=part.x, y=part.y, mode="markers", name=name, legendgroup=name,
                                     showlegend=(i == 0), marker={"size": marker_size,
                                                                  "color": palette[j % len(palette)], "opacity": 0.8},
                                     hovertemplate=f"class {name}<extra>{layer}</extra>"), row=r, col=c)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="")
    fig.update_layout(title=title or "UMAP of each layer's input (aligned)", legend_title_text="class")
    apply_theme(fig, t, width=max(t["width"], 260 * cols), height=max(260, 250 * rows + 80))
    fig.update_xaxes(showgrid=False, ticks="")
    fig.update_yaxes(showgrid=False, ticks="")
    return fig


def bits_figure(table: pd.DataFrame, layers: Sequence[str] | None = None, title: str | None = None,
                theme: dict | None = None):
    """Weight bits per layer (columns) for each schedule (rows), as an annotated heatmap."""
    go = _go()
    _need(table, ["schedule", "w_bits"], "table")
    t = theme or PAPER
    ok = table[table.w_bits.astype(str).str.len() > 0]
    grid = [[int(b) for b in str(w).split("-")] for w in ok.w_bits]
    n = max(len(g) for g in grid)
    layers = list(layers) if layers is not None else [f"L{i + 1}" for i in range(n)]
    z = np.log2(np.array(grid, dtype=float))
    scale = [[0.0, BIT_COLOURS[1]], [0.2, BIT_COLOURS[2]], [0.4, BIT_COLOURS[4]], [0.6, BIT_COLOURS[8]],
             [1.0, BIT_COLOURS[32]]]
    fig = go.Figure(go.Heatmap(z=z, x=layers, y=list(ok.schedule), text=grid, texttemplate="%{text}",
                               colorscale=scale, zmin=0, zmax=5, showscale=False, xgap=2, ygap=2,
                               hovertemplate="%{y}, %{x}: %{text} bits<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title_text="schedule")
    fig.update_xaxes(title_text="layer (forward order)", side="bottom")
    fig.update_layout(title=title or "Weight bits per layer")
    apply_theme(fig, t, height=max(260, 34 * len(ok) + 140))
    fig.update_xaxes(showgrid=False)
    fig.update_yaxes(showgrid=False)
    return fig


def memory_figure(tables: Mapping[str, pd.DataFrame] | pd.DataFrame, title: str | None = None,
                  theme: dict | None = None, log_y: bool = True):
    """Quantized-weight memory (KiB) per layer: one bar group per memory table."""
    go = _go()
    t = theme or PAPER
    if isinstance(tables, pd.DataFrame):
        tables = {"model": tables}
    fig = go.Figure()
    for i, (label, df) in enumerate(tables.items()):
        _need(df, ["layer", "weight_kib", "w_bits"], f"memory table {label!r}")
        fig.add_trace(go.Bar(x=df.layer, y=df.weight_kib, name=str(label),
                             marker_color=t["colorway"][i % len(t["colorway"])],
                             customdata=df.w_bits, hovertemplate="%{x}: %{y:.2f} KiB at %{customdata} bits"))
    fig.update_layout(barmode="group", title=title or "Weight memory per layer")
    fig.update_yaxes(title_text="KiB", type="log" if log_y else None)
    fig.update_xaxes(title_text="layer")
    return apply_theme(fig, t)


def pareto_frontier(memory: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both lower memory and higher accuracy, by memory."""
    pts = sorted(((m, -a, i) for i, (m, a) in enumerate(zip(memory, accuracy)) if np.isfinite(m) and np.isfinite(a)))
    out, best = [], -np.inf
    for m, neg_a, i in pts:
        if -neg_a > best:
            out.append(i)
            best = -neg_a
    return out


def pareto_figure(table: pd.DataFrame, title: str | None = None, theme: dict | None = None, log_x: bool = True):
    """Accuracy against quantized-weight memory, with error bars, the Pareto frontier and the float line."""
    go = _go()
    _need(table, ["schedule", "kind", "kib", "acc_mean", "acc_std"], "table")
    t = theme or PAPER
    df = table[np.isfinite(table.acc_mean.astype(float))].reset_index(drop=True)
    fig = go.Figure()
    quant = df[df.kind != "float"]
    kinds = list(dict.fromkeys(quant.kind))
    symbols = {"uniform": "circle", "decreasing": "triangle-down", "increasing": "triangle-up",
               "allocated": "star", "custom": "diamond"}
    for i, kind in enumerate(kinds):
        part = quant[quant.kind == kind]
        fig.add_trace(go.Scatter(x=part.kib, y=part.acc_mean, mode="markers+text", name=kind, text=part.schedule,
                                 textposition="top center", textfont={"size": 10},
                                 error_y={"type": "data", "array": part.acc_std.fillna(0), "thickness": 1},
                                 marker={"size": 10, "symbol": symbols.get(kind, "circle"),
                                         "color": t["colorway"][i % len(t["colorway"])]},
                                 hovertemplate="%{text}: %{y:.2f}% at %{x:.2f} KiB<extra></extra>"))
    front = [quant.index[i] for i in pareto_frontier(list(quant.kib), list(quant.acc_mean))]
    if front:
        f = df.loc[front]
        fig.add_trace(go.Scatter(x=f.kib, y=f.acc_mean, mode="lines", name="Pareto frontier",
                                 line={"color": "#666666", "dash": "dot", "shape": "hv"}, hoverinfo="skip"))
    flt = df[df.kind == "float"]
    if len(flt):
        acc = float(flt.acc_mean.iloc[0])
        fig.add_hline(y=acc, line_dash="dash", line_color="#999999",
                      annotation_text=f"float-32: {acc:.2f}% at {float(flt.kib.iloc[0]):.0f} KiB",
                      annotation_position="top left", annotation_font_size=10, annotation_font_color="#666666")
    fig.update_xaxes(title_text="quantized-weight memory (KiB)", type="log" if log_x else None)
    fig.update_yaxes(title_text="test accuracy (%)")
    fig.update_layout(title=title or "Accuracy vs memory")
    return apply_theme(fig, t)


def training_curves(history: pd.DataFrame, metric: str = "test_acc", title: str | None = None,
                    theme: dict | None = None):
    """A metric of ``History``/``Results.history`` by epoch, one line per schedule (mean over seeds)."""
    go = _go()
    _need(history, ["epoch", metric], "history")
    t = theme or PAPER
    fig = go.Figure()
    groups = history.groupby("schedule", sort=False) if "schedule" in history else [("run", history)]
    for i, (name, df) in enumerate(groups):
        mean = df.groupby("epoch")[metric].mean()
        y = 100 * mean if metric.endswith("acc") else mean
        fig.add_trace(go.Scatter(x=mean.index, y=y, mode="lines+markers", name=str(name), marker={"size": 5},
                                 line={"color": t["colorway"][i % len(t["colorway"])]}))
    names = {"test_acc": "test accuracy (%)", "train_acc": "train accuracy (%)", "loss": "training loss",
             "test_loss": "test loss"}
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=names.get(metric, metric))
    fig.update_layout(title=title or "Training curves")
    return apply_theme(fig, t)


def staircase_figure(weights, quantized, bits: int | None = None, title: str | None = None,
                     theme: dict | None = None, bins: int = 80):
    """A quantizer's staircase (quantized against float weight) over the weight histogram.

    ``weights`` and ``quantized`` are arrays of the same size: a tensor and the
    quantizer applied to it.
    """
    go = _go()
    from plotly.subplots import make_subplots

    w = np.asarray(weights, dtype=float).ravel()
    q = np.asarray(quantized, dtype=float).ravel()
    if w.shape != q.shape or w.size == 0:
        raise ValueError(f"weights and quantized must be non-empty and of one size, got {w.shape} and {q.shape}")
    t = theme or PAPER
    order = np.argsort(w)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Histogram(x=w, nbinsx=bins, name="weights", marker_color="#BBBBBB", opacity=0.8),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=w[order], y=q[order], mode="lines", name="quantized value",
                             line={"color": t["colorway"][0], "width": 2, "shape": "hv"}), secondary_y=True)
    levels = np.unique(q)
    fig.update_xaxes(title_text="float weight")
    fig.update_yaxes(title_text="count", secondary_y=False)
    fig.update_yaxes(title_text="quantized value", secondary_y=True, showgrid=False)
    label = f"{bits}-bit quantizer" if bits else "quantizer"
    fig.update_layout(title=title or f"{label}: {len(levels)} levels", bargap=0.02)
    return apply_theme(fig, t)


def quant_error_figure(errors: pd.DataFrame, title: str | None = None, theme: dict | None = None):
    """Per-layer weight SQNR (dB), bars coloured by bits (``quantization_error`` output)."""
    go = _go()
    _need(errors, ["layer", "w_bits", "sqnr_db"], "errors")
    t = theme or PAPER
    finite = errors[np.isfinite(errors.sqnr_db)]
    fig = go.Figure(go.Bar(x=finite.layer, y=finite.sqnr_db, text=[f"{b} b" for b in finite.w_bits],
                           textposition="outside", marker_color=[BIT_COLOURS.get(int(b), "#888") for b in finite.w_bits],
                           hovertemplate="%{x}: %{y:.1f} dB<extra></extra>"))
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text="weight SQNR (dB)")
    fig.update_layout(title=title or "Weight quantization error per layer")
    return apply_theme(fig, t)
