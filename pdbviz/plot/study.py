"""The figure of a metric study: accuracy against budget per metric, and each metric's rank correlation.

Takes the tables of ``pdbviz.metric_study`` (or the study itself); imports no training code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .figures import _go, _need
from .theme import apply_theme, palette, resolve_theme


def _tables(study, correlation):
    if hasattr(study, "summary") and hasattr(study, "correlation"):
        return study.summary, study.correlation if correlation is None else correlation
    return study, correlation


def _hex_rgba(colour: str, alpha: float) -> str:
    c = colour.lstrip("#")
    r, g, b = (int(c[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


def metric_study_figure(study, correlation: pd.DataFrame | None = None, title: str | None = None,
                        theme: dict | str | None = None, bands: bool = True):
    """Accuracy against budget, one line per metric with its 95% band, and a bar per metric of Spearman's rho.

    Args:
        study: a ``MetricStudy``, or its ``summary`` table (``method``,
            ``family``, ``budget``, ``acc_mean``, ``acc_ci95``).
        correlation: its ``correlation`` table (``metric``, ``spearman``,
            ``ci_low``, ``ci_high``); taken from ``study`` when it is a
            ``MetricStudy``; without one, the right panel is left out.
        bands: draw the 95% intervals as bands (else as error bars).

    Left panel: test accuracy (mean over seeds, 95% interval of
    ``pdbviz.claims``) at each budget in average weight bits, the uniform
    ``k``-bit references dashed in grey and the float model as a line.
    Right panel: Spearman's rho between predicted loss and measured accuracy
    drop (higher is better), with its bootstrap interval. Print it with
    ``plot.for_print(fig, "page")``.

    Example:
        >>> s = pd.DataFrame({"method": ["a", "a", "uniform", "uniform"], "family": ["metric"] * 2 + ["uniform"] * 2,
        ...                   "budget": [2.0, 4.0] * 2, "acc_mean": [97.0, 98.0, 96.0, 98.0], "acc_ci95": 0.5})
        >>> c = pd.DataFrame({"metric": ["a"], "spearman": [0.8], "ci_low": [0.2], "ci_high": [1.0]})
        >>> [tr.name for tr in metric_study_figure(s, c).data if tr.showlegend is not False]
        ['a', 'uniform k-bit']
    """
    go = _go()
    from plotly.subplots import make_subplots

    summary, correlation = _tables(study, correlation)
    _need(summary, ["method", "family", "budget", "acc_mean", "acc_ci95"], "summary")
    if correlation is not None:
        _need(correlation, ["metric", "spearman", "ci_low", "ci_high"], "correlation")
    t = resolve_theme(theme)
    quant = summary[summary.family != "float"]
    metrics = list(dict.fromkeys(quant.method[quant.family == "metric"]))
    colours = palette(t, len(metrics))
    colour = {m: colours[i % len(colours)] for i, m in enumerate(metrics)}
    colour["uniform"] = "#777777"
    panels = correlation is not None and len(correlation) > 0
    fig = make_subplots(rows=1, cols=2 if panels else 1, column_widths=[0.68, 0.32] if panels else None,
                        horizontal_spacing=0.14)
    for method in [*metrics, "uniform"]:
        df = quant[quant.method == method].sort_values("budget")
        df = df[np.isfinite(df.acc_mean.astype(float))]
        if not len(df):
            continue
        ci = df.acc_ci95.fillna(0).to_numpy(float)
        name = "uniform k-bit" if method == "uniform" else str(method)
        dash = "dash" if method == "uniform" else None
        if bands:
            x = list(df.budget) + list(df.budget[::-1])
            y = list(np.minimum(df.acc_mean + ci, 100.0)) + list(np.maximum(df.acc_mean - ci, 0.0)[::-1])  # accuracy is a percentage
            fig.add_trace(go.Scatter(x=x, y=y, fill="toself", fillcolor=_hex_rgba(colour[method], 0.08),
                                     line={"width": 0}, mode="lines", hoverinfo="skip", showlegend=False,
                                     legendgroup=name), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=df.budget, y=df.acc_mean, mode="lines+markers", name=name, legendgroup=name,
            line={"color": colour[method], "width": t["line_width"], "dash": dash},
            marker={"size": t["marker_size"] - 2, "color": colour[method]},
            error_y=None if bands else {"type": "data", "array": ci, "thickness": 1, "width": 3},
            hovertemplate=f"{name}: %{{y:.2f}}% at %{{x:g}} bits<extra></extra>"), row=1, col=1)
    flt = summary[summary.family == "float"]
    if len(flt) and len(quant):
        acc = float(flt.acc_mean.iloc[0])
        fig.add_trace(go.Scatter(x=[quant.budget.min(), quant.budget.max()], y=[acc, acc], mode="lines",
                                 name=f"float-32 ({acc:.2f}%)", hoverinfo="skip",
                                 line={"color": "#999999", "dash": "dot", "width": 1}), row=1, col=1)
    budgets = sorted(quant.budget.unique())
    fig.update_xaxes(title_text="budget (average weight bits)", tickvals=budgets,
                     ticktext=[f"{b:g}" for b in budgets], row=1, col=1)
    fig.update_yaxes(title_text="test accuracy (%), 95% CI", row=1, col=1)
    if panels:
        c = correlation[correlation.metric.isin(metrics)] if metrics else correlation
        rho = c.spearman.to_numpy(float)
        up = np.nan_to_num(c.ci_high.to_numpy(float) - rho, nan=0.0)
        down = np.nan_to_num(rho - c.ci_low.to_numpy(float), nan=0.0)
        fig.add_trace(go.Bar(x=list(c.metric), y=rho, showlegend=False,
                             marker_color=[colour.get(m, "#888888") for m in c.metric],
                             error_y={"type": "data", "symmetric": False, "array": up, "arrayminus": down,
                                      "thickness": 1, "width": 3},
                             hovertemplate="%{x}: rho = %{y:.2f}<extra></extra>"), row=1, col=2)
        fig.update_yaxes(title_text="Spearman rho (loss vs drop)", range=[-1.05, 1.05], zeroline=True,
                         zerolinecolor="#999999", row=1, col=2)
        fig.update_xaxes(tickangle=-45, row=1, col=2)
    fig.update_layout(title=title or "Which sensitivity metric predicts?", legend={"tracegroupgap": 0})
    fig = apply_theme(fig, t, width=t["width"] + (300 if panels else 0))
    return fig
