"""One function per figure. Each takes results (DataFrames, arrays) first and returns a
``plotly.graph_objects.Figure``; none calls ``.show()`` or imports training code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ._layout import _OVER, _legend_below, log_range, log_ticks, same_as  # noqa: F401 - log_range, same_as re-exported
from .theme import BIT_COLOURS, apply_theme, palette, resolve_theme


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
    t = resolve_theme(theme)
    bits = _bits_of(schedule)
    fig = make_subplots(specs=[[{"secondary_y": bool(bits)}]])
    groups = profile.groupby("schedule", sort=False) if "schedule" in profile else [(None, profile)]
    order = list(dict.fromkeys(profile.sort_values("depth").layer))
    groups = [(name, df.sort_values("depth")) for name, df in groups]
    equal = same_as({str(name): df[metric].to_numpy(float) for name, df in groups})
    for i, (name, df) in enumerate(groups):
        label = str(name or metric)
        twin = equal.get(label)
        fig.add_trace(go.Scatter(x=df.layer, y=df[metric], mode="lines+markers",
                                 name=f"{label} (= {twin})" if twin else label,
                                 line={"color": t["colorway"][i % len(t["colorway"])], "width": 2,
                                       "dash": _OVER if twin else None},
                                 marker={"symbol": "x-thin-open" if twin else "circle", "size": 9 if twin else 6,
                                         "line": {"width": 1.5, "color": t["colorway"][i % len(t["colorway"])]}},
                                 hovertemplate="%{x}: %{y:.3f}<extra>" + label + "</extra>"),
                      secondary_y=False)
    if bits:
        layers = [lay for lay in order if lay in bits]
        fig.add_trace(go.Bar(x=layers, y=[bits[lay] for lay in layers], name="weight bits", opacity=0.35,
                             marker_color=[BIT_COLOURS.get(bits[lay], "#888") for lay in layers],
                             text=[bits[lay] for lay in layers], textposition="outside"), secondary_y=True)
        fig.update_yaxes(title_text="weight bits", secondary_y=True, range=[0, 9.5], showgrid=False,
                         tickmode="array", tickvals=[1, 2, 4, 8], ticks="outside")
        fig.data = fig.data[-1:] + fig.data[:-1]  # bars behind lines, the lines in their order
    label = {"fisher": "Fisher criterion tr(S_B)/tr(S_W)", "probe": "linear-probe accuracy",
             "knn": "k-NN accuracy", "silhouette": "silhouette"}.get(metric, metric)
    fig.update_yaxes(title_text=label, secondary_y=False, type="log" if metric == "fisher" else None)
    if metric == "fisher":
        values = profile[metric].astype(float)
        values = values[np.isfinite(values) & (values > 0)]
        if len(values):
            ticks, text = log_ticks(float(values.min()), float(values.max()))
            fig.update_yaxes(tickvals=ticks, ticktext=text, secondary_y=False)
    fig.update_xaxes(title_text="input of layer (depth →)", categoryorder="array", categoryarray=order)
    fig.update_layout(title=title or "Class separability by depth")
    apply_theme(fig, t)
    if bits:  # the right axis holds the bits: the legend goes under the plot, off its ticks
        _legend_below(fig)
    return fig


def umap_grid(embedding: pd.DataFrame, classes: Sequence[str] | None = None, cols: int | None = None,
              title: str | None = None, theme: dict | None = None, marker_size: int = 4):
    """UMAP small multiples, one panel per layer, points coloured by class."""
    go = _go()
    from plotly.subplots import make_subplots

    _need(embedding, ["layer", "depth", "label", "x", "y"], "embedding")
    t = resolve_theme(theme)
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
    t = resolve_theme(theme)
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
                  theme: dict | str | None = None, log_y: bool = True):
    """Quantized-weight memory (KiB) per layer: one bar group per memory table (labels in words)."""
    go = _go()
    t = resolve_theme(theme)
    if isinstance(tables, pd.DataFrame):
        tables = {"model": tables}
    fig = go.Figure()
    values = []
    for i, (label, df) in enumerate(tables.items()):
        _need(df, ["layer", "weight_kib", "w_bits"], f"memory table {label!r}")
        values += list(df.weight_kib[df.weight_kib > 0])
        fig.add_trace(go.Bar(x=df.layer, y=df.weight_kib, name=str(label),
                             marker_color=t["colorway"][i % len(t["colorway"])],
                             customdata=df.w_bits, hovertemplate="%{x}: %{y:.2f} KiB at %{customdata} bits"))
    fig.update_layout(barmode="group", title=title or "Weight memory per layer")
    if log_y and values:
        ticks, text = log_ticks(min(values), max(values))
        fig.update_yaxes(type="log", tickvals=ticks, ticktext=text)
    fig.update_yaxes(title_text="KiB")
    fig.update_xaxes(title_text="layer", tickangle=-45 if len(tables) and max(len(str(x)) for df in tables.values()
                                                                            for x in df.layer) > 6 else 0)
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


_SYMBOLS = {"uniform": "circle", "decreasing": "triangle-down", "increasing": "triangle-up", "allocated": "star",
            "custom": "diamond"}


def pareto_figure(table: pd.DataFrame, title: str | None = None, theme: dict | str | None = None, log_x: bool = True):
    """Accuracy against quantized-weight memory: one legend entry per schedule, 95% confidence intervals,
    the frontier of the homogeneous schedules and the float-32 line.

    Error bars are the table's ``acc_ci95`` (over new seeds and new test
    images, from the runs' per-image correctness; see ``pdbviz.claims``), else its seed standard deviation.
    """
    go = _go()
    _need(table, ["schedule", "shape", "kib", "acc_mean", "acc_std"], "table")
    t = resolve_theme(theme)
    df = table[np.isfinite(table.acc_mean.astype(float))].reset_index(drop=True)
    err = df.acc_ci95 if "acc_ci95" in df else df.acc_std
    fig = go.Figure()
    quant = df[df["shape"] != "float"]
    colours = palette(t, len(quant))
    # a schedule with the same bits and the same accuracy as an earlier one is the same point: labelled "(= ...)"
    equal: dict[str, str] = {}
    first_of: dict[tuple, str] = {}
    for _, r in quant.iterrows():
        key = (str(r.get("w_bits", "")), str(r.get("a_bits", "")), round(float(r.kib), 6), round(float(r.acc_mean), 9))
        if key[0] and key in first_of:
            equal[str(r.schedule)] = first_of[key]
        first_of.setdefault(key, str(r.schedule))
    seen: dict[float, int] = {}
    for i, (idx, row) in enumerate(quant.iterrows()):
        same = seen.get(round(float(row.kib), 6), 0)  # schedules of equal memory side by side, not on top
        seen[round(float(row.kib), 6)] = same + 1
        x = row.kib * (1.03 ** ((same + 1) // 2 * (1 if same % 2 else -1))) if same else row.kib
        twin = equal.get(str(row.schedule))
        fig.add_trace(go.Scatter(
            x=[x], y=[row.acc_mean], mode="markers", name=f"{row.schedule} (= {twin})" if twin else str(row.schedule),
            error_y={"type": "data", "array": [0 if not np.isfinite(err[idx]) else err[idx]], "thickness": 1,
                     "width": 3},
            marker={"size": t["marker_size"], "symbol": _SYMBOLS.get(row["shape"], "circle"),
                    "color": colours[i % len(colours)], "line": {"width": 0.5, "color": "#222"}},
            hovertemplate=f"{row.schedule}: %{{y:.2f}}% at {row.kib:.2f} KiB<extra></extra>"))
    uniform = quant[quant["shape"] == "uniform"]
    front = [uniform.index[i] for i in pareto_frontier(list(uniform.kib), list(uniform.acc_mean))]
    if front:
        f = df.loc[front]
        fig.add_trace(go.Scatter(x=f.kib, y=f.acc_mean, mode="lines", name="homogeneous frontier",
                                 line={"color": "#777777", "dash": "dot", "shape": "hv", "width": 1},
                                 hoverinfo="skip"))
    for (_, row), dash in zip(df[df["shape"] == "float"].iterrows(), ("dash", "dot", "dashdot", "longdash")):
        acc = float(row.acc_mean)
        fig.add_trace(go.Scatter(x=[quant.kib.min(), quant.kib.max()] if len(quant) else [], y=[acc, acc],
                                 mode="lines", name=f"{row.schedule} ({acc:.2f}%)", hoverinfo="skip",
                                 line={"color": "#999999", "dash": dash, "width": 1}))
    if log_x and len(quant):
        xs = [x for tr in fig.data if tr.mode == "markers" for x in tr.x]
        span, ticks, text = log_range(float(min(xs)), float(max(xs)))
        fig.update_xaxes(type="log", tickvals=ticks, ticktext=text, range=span)
    fig.update_xaxes(title_text="quantized-weight memory (KiB)")
    fig.update_yaxes(title_text="test accuracy (%), 95% CI")
    fig.update_layout(title=title or "Accuracy vs memory", legend={"tracegroupgap": 0})
    return apply_theme(fig, t)


def training_curves(history: pd.DataFrame, metric: str = "test_acc", title: str | None = None,
                    theme: dict | str | None = None):
    """A metric of ``History``/``Results.history`` by epoch, one line per schedule: the mean over seeds, with
    a band of one standard deviation where there are several seeds."""
    go = _go()
    _need(history, ["epoch", metric], "history")
    t = resolve_theme(theme)
    fig = go.Figure()
    groups = list(history.groupby("schedule", sort=False)) if "schedule" in history else [("run", history)]
    factor = 100 if metric.endswith("acc") else 1
    colours = palette(t, len(groups))
    means = {str(name): df.groupby("epoch")[metric].mean() for name, df in groups}
    equal = same_as({name: [*m.index, *m.to_numpy(float)] for name, m in means.items()})
    for i, (name, df) in enumerate(groups):
        twin = equal.get(str(name))
        stats = df.groupby("epoch")[metric].agg(["mean", "std", "count"])
        colour = colours[i % len(colours)]
        if (stats["count"] > 1).any():
            upper, lower = factor * (stats["mean"] + stats["std"].fillna(0)), factor * (stats["mean"] - stats["std"].fillna(0))
            fig.add_trace(go.Scatter(x=list(stats.index) + list(stats.index[::-1]),
                                     y=list(upper) + list(lower[::-1]), fill="toself", fillcolor=colour, mode="lines",
                                     opacity=0.15, line={"width": 0}, hoverinfo="skip", showlegend=False,
                                     legendgroup=str(name)))
        fig.add_trace(go.Scatter(x=stats.index, y=factor * stats["mean"], mode="lines+markers",
                                 name=f"{name} (= {twin})" if twin else str(name),
                                 marker={"size": 9 if twin else 5, "symbol": "x-thin-open" if twin else "circle",
                                         "line": {"width": 1.5, "color": colour}},
                                 line={"color": colour, "dash": _OVER if twin else None}, legendgroup=str(name)))
    names = {"test_acc": "test accuracy (%)", "train_acc": "train accuracy (%)", "loss": "training loss",
             "test_loss": "test loss"}
    fig.update_xaxes(title_text="epoch", dtick=1)
    fig.update_yaxes(title_text=names.get(metric, metric))
    fig.update_layout(title=title or "Training curves", legend={"tracegroupgap": 0})
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
    t = resolve_theme(theme)
    order = np.argsort(w)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Histogram(x=w, nbinsx=bins, name="weights", marker_color="#BBBBBB", opacity=0.8),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=w[order], y=q[order], mode="lines", name="quantized value",
                             line={"color": t["colorway"][0], "width": 2, "shape": "hv"}), secondary_y=True)
    levels = np.unique(q)
    fig.update_xaxes(title_text="float weight")
    fig.update_yaxes(title_text="count", secondary_y=False)
    shown = levels if len(levels) <= 9 else levels[np.linspace(0, len(levels) - 1, 9).round().astype(int)]
    fig.update_yaxes(title_text="quantized value", secondary_y=True, showgrid=False, tickvals=list(shown),
                     ticktext=[f"{v:.3g}" for v in shown])
    label = f"{bits}-bit quantizer" if bits else "quantizer"
    fig.update_layout(title=title or f"{label}: {len(levels)} levels", bargap=0.02)
    apply_theme(fig, t)
    return _legend_below(fig, rows=1)  # the right axis holds the levels: the legend goes off its ticks


def quant_error_figure(errors: pd.DataFrame, title: str | None = None, theme: dict | None = None):
    """Per-layer weight SQNR (dB), bars coloured by bits (``quantization_error`` output)."""
    go = _go()
    _need(errors, ["layer", "w_bits", "sqnr_db"], "errors")
    t = resolve_theme(theme)
    finite = errors[np.isfinite(errors.sqnr_db)]
    fig = go.Figure(go.Bar(x=finite.layer, y=finite.sqnr_db, text=[f"{b} b" for b in finite.w_bits],
                           textposition="outside", marker_color=[BIT_COLOURS.get(int(b), "#888") for b in finite.w_bits],
                           hovertemplate="%{x}: %{y:.1f} dB<extra></extra>"))
    fig.update_xaxes(title_text="layer")
    fig.update_yaxes(title_text="weight SQNR (dB)")
    fig.update_layout(title=title or "Weight quantization error per layer")
    return apply_theme(fig, t)
