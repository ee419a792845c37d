"""Self-contained HTML reports: a comparison (every figure, the table, the claims, the configuration) and a
metric study (``write_study_report``, or a section of the comparison's report)."""

from __future__ import annotations

import html
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

from typing import TYPE_CHECKING

import pandas as pd

from ._io import atomic_write
from ._version import __version__
from .results import Results, compact_bits

if TYPE_CHECKING:  # pragma: no cover
    from .study import MetricStudy

log = logging.getLogger(__name__)


def standard_figures(results: Results, embedding: pd.DataFrame | None = None,
                     errors: pd.DataFrame | None = None, staircase: tuple | None = None,
                     memory: dict | None = None) -> dict:
    """The figures of a comparison, ``{stem: go.Figure}``, in reading order."""
    from . import plot

    t = results.table
    figs = {"accuracy_vs_memory": plot.pareto_figure(t, title=f"Accuracy vs memory ({results.config['dataset']})")}
    figs["bits_per_layer"] = plot.bits_figure(t, results.config.get("layers"))
    prof = results.profiles
    if len(prof):
        halving = results.label_of("halving")
        shown = [label for label in (results.label_of("float"), halving, results.label_of("1"))
                 if label in set(prof.schedule)]
        shown += [label for label in prof.schedule.unique()
                  if results.table.set_index("schedule")["shape"].get(label) == "allocated"][:1]
        schedule = results.schedule(halving) if halving is not None else None
        metric = results.config.get("profile_metrics", ["fisher"])[0]
        figs["separability_profile"] = plot.profile_figure(
            prof[prof.schedule.isin(shown)], metric=metric, schedule=schedule,
            title="Separability by depth" + (f"; bars: {halving} bits" if schedule is not None else ""))
    if embedding is not None and len(embedding):
        figs["umap_layers"] = plot.umap_grid(embedding, title="UMAP of each layer's input, float model (aligned)")
    if len(results.history):
        figs["training_curves"] = plot.training_curves(
            results.history[results.history.schedule != results.label_of("float")],
                                                       title="Fine-tuning curves (test accuracy)")
    if memory:
        figs["memory_per_layer"] = plot.memory_figure(memory)
    if errors is not None:
        figs["quantization_error"] = plot.quant_error_figure(errors, title="Weight SQNR per layer under 8-4-2-1")
    if staircase is not None:
        w, wq, bits, name = staircase
        figs["quantizer_staircase"] = plot.staircase_figure(w, wq, bits, title=f"{bits}-bit DoReFa on {name} weights")
    return figs


def write_report(results: Results, directory: str | os.PathLike, figures: dict,
                 formats=("html", "svg", "pdf", "png"), title: str = "pdbviz report",
                 study: "MetricStudy | None" = None) -> dict:
    """Save results, figures and ``report.html`` into ``directory``.

    Files: ``report.html`` (one page, plotly.js inlined, opens offline),
    ``results.csv`` / ``results.json`` / ``runs.csv`` / ``history.csv`` /
    ``profiles.csv``, ``table.tex``, and ``figures/<stem>.html`` (interactive,
    screen theme; the report embeds these) with the print-ready
    ``figures/<stem>.{svg,pdf,png}`` at page width (7 in) and
    ``figures/<stem>-column.{svg,pdf,png}`` at column width (3.5 in): paper
    theme, every font 7 pt or more, PNG at 300 dpi. Static formats are
    skipped with a warning when Chromium is missing (the report needs none).
    Returns ``{"report": path, "figures": {...}, "static_error": str|None}``.

    With a ``study`` (``pdbviz.metric_study``), its tables are saved too
    (``MetricStudy.save``), its figure joins ``figures`` as ``metric_study``
    and the page ends with its section (see ``write_study_report``); without
    one, nothing changes.
    """
    from . import plot

    directory = Path(directory)
    if study is not None:
        figures = {**figures, "metric_study": plot.metric_study_figure(study)}
        study.save(directory)
    results.save(directory)
    with atomic_write(directory / "table.tex", "w", encoding="utf-8") as fh:
        fh.write(results.to_latex())
    meta = {"dataset": results.config.get("dataset"), "model": results.config.get("model"),
            "seeds": results.config.get("seeds"), "schedules": results.config.get("schedule_strings")}
    fig_dir = directory / "figures"
    html_formats = [f for f in formats if f == "html"]
    saved = plot.save_many(figures, fig_dir, html_formats or ("html",), meta, include_plotlyjs="directory")
    static = [f for f in formats if f in plot.export.STATIC]
    static_error = None
    if static:
        try:
            saved = _save_print(figures, fig_dir, static, meta, saved)
        except plot.StaticExportError as err:
            static_error = str(err)
            log.warning("%s", err)
    path = directory / "report.html"
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(_page(results, {k: v for k, v in figures.items() if k != "metric_study" or study is None}, title,
                       meta, study_section=_study_html(study, figures["metric_study"]) if study is not None else ""))
    return {"report": path, "figures": saved, "static_error": static_error}


#: the print sizes every static figure of a report is written at, with the suffix of its file names
PRINT_VARIANTS = {"page": "", "column": "-column"}


def _save_print(figures: dict, fig_dir: Path, static, meta: dict, saved: dict) -> dict:
    """Write each figure's static formats at page width (``<stem>.pdf``) and column width
    (``<stem>-column.pdf``), paper theme, PNG at 300 dpi, in one Chromium session; add the paths to ``saved``
    (``saved[stem]["pdf"]``, ``saved[stem]["pdf-column"]``)."""
    from . import plot
    from .plot.theme import PX_PER_INCH

    printed = {f"{stem}{suffix}": plot.for_print(fig, size, "paper")
               for stem, fig in figures.items() for size, suffix in PRINT_VARIANTS.items()}
    more = plot.save_many(printed, fig_dir, static, meta, size=None, scale=300 / PX_PER_INCH)
    for stem in figures:
        for size, suffix in PRINT_VARIANTS.items():
            for fmt, path in more[f"{stem}{suffix}"].items():
                saved[stem][fmt + suffix] = path
    return saved


def write_study_report(study: "MetricStudy", directory: str | os.PathLike, formats=("html",),
                       title: str = "Which sensitivity metric predicts?") -> dict:
    """Save a metric study's tables, its figure and ``report.html`` into ``directory``.

    Files: ``report.html`` (one page, plotly.js inlined, opens offline): the
    protocol, the rank-correlation table (Spearman's rho between predicted
    loss and measured accuracy drop, higher is better, with its bootstrap
    interval), the accuracy at each budget with 95% intervals, the figure,
    every allocation and the configuration; the tables of
    ``MetricStudy.save``; ``figures/metric_study.<format>`` (static formats at
    page and column size as in ``write_report``, skipped with a warning when Chromium is missing).

    Returns ``{"report": path, "figures": {...}, "static_error": str|None}``.

    Example::

        study = pdbviz.metric_study("digits", seeds=[0, 1, 2])
        write_study_report(study, "study-report")
    """
    from . import plot

    directory = Path(directory)
    study.save(directory)
    fig = plot.metric_study_figure(study)
    cfg = study.config
    meta = {"dataset": cfg.get("dataset"), "model": cfg.get("model"), "seeds": cfg.get("seeds"),
            "metrics": cfg.get("metrics"), "budgets": cfg.get("budgets")}
    fig_dir = directory / "figures"
    saved = plot.save_many({"metric_study": fig}, fig_dir, ("html",), meta, include_plotlyjs="directory")
    static = [f for f in formats if f in plot.export.STATIC]
    static_error = None
    if static:
        try:
            saved = _save_print({"metric_study": fig}, fig_dir, static, meta, saved)
        except plot.StaticExportError as err:
            static_error = str(err)
            log.warning("%s", err)
    from .plot.export import PAGE_STYLE, html_page

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = (f"<h1>{html.escape(title)}</h1>\n<p>Generated by pdbviz {__version__} on {when}.</p>\n"
            + _study_html(study, fig, heading=False)
            + f"<h2>Configuration</h2><pre>{html.escape(json.dumps(cfg, indent=2, default=str))}</pre>")
    path = directory / "report.html"
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(html_page(title, body, meta, include_plotlyjs=True, style=PAGE_STYLE))
    return {"report": path, "figures": saved, "static_error": static_error}


#: readable headers of the study's tables in the report (the saved CSV files keep the raw names)
_STUDY_HEADERS = {"avg_bits": "avg bits", "kib": "KiB", "acc_mean": "accuracy %", "acc_std": "seed std",
                  "acc_ci95": "95% CI ±", "drop_mean": "drop (points)", "predicted_loss": "predicted loss",
                  "w_bits": "weight bits", "a_bits": "input bits", "n_seeds": "seeds"}
_CORRELATION_HEADERS = {"spearman": "Spearman rho", "ci_low": "95% CI low", "ci_high": "95% CI high",
                        "seed_mean": "seed mean", "seed_std": "seed std", "n_seeds": "seeds"}


def _study_html(study: "MetricStudy", fig, heading: bool = True) -> str:
    """The study's section: protocol, rank correlations, accuracies, figure, allocations."""
    from .plot.export import figure_html

    cfg = study.config
    corr = study.correlation.copy()
    for col in ("spearman", "ci_low", "ci_high", "seed_mean"):
        corr[col] = corr[col].map(lambda v: f"{v:+.2f}")
    corr["seed_std"] = corr["seed_std"].map(lambda v: f"{v:.2f}")
    summary = study.summary.copy()
    for col in ("avg_bits", "kib", "acc_mean", "acc_std", "acc_ci95", "drop_mean"):
        summary[col] = summary[col].map(lambda v: f"{v:.2f}")
    summary["predicted_loss"] = summary["predicted_loss"].map(lambda v: f"{v:.3g}")
    for col in ("w_bits", "a_bits"):
        if col in summary:
            summary[col] = summary[col].map(compact_bits)
    summary = summary.rename(columns=_STUDY_HEADERS)
    n_seeds = len(cfg.get("seeds", []))
    head = "<h2 id='metric-study'>Which sensitivity metric predicts?</h2>\n" if heading else ""
    return f"""{head}<p>Per seed ({n_seeds} seeds), a float {html.escape(str(cfg.get('model')))} was trained on
{html.escape(str(cfg.get('dataset')))} ({cfg.get('epochs')} epochs); each metric
({html.escape(', '.join(cfg.get('metrics', [])))}) was measured on it and allocated weight bits
({', '.join(map(str, cfg.get('w_bits', [])))} bits) at each budget ({', '.join(f'{b:g}' for b in cfg.get('budgets', []))} average bits) from the
exact front of its predicted loss; every allocation, and the uniform <i>k</i>-bit schedule with the largest
<i>k</i> within each budget, was fine-tuned {cfg.get('finetune_epochs')} epochs from the float model of its seed.</p>
<h3>Rank correlation of predicted loss with measured accuracy drop</h3>
<p>Spearman's rho over every allocation of a metric (all budgets and seeds) between the predicted loss the front
gives and the accuracy drop measured after fine-tuning (float accuracy of the seed minus the schedule's).
<b>Higher is better</b>: +1 means the metric ranks its allocations exactly as they turn out. The 95% interval is a
bootstrap over seeds with each accuracy redrawn from the binomial of the {cfg.get('n_test')}-image test set
({cfg.get('n_boot')} resamples); <i>seed mean</i> and <i>seed std</i> are those of the per-seed correlations.</p>
{corr.rename(columns=_CORRELATION_HEADERS).to_html(index=False, escape=True, border=0)}
<h3>Test accuracy at each budget (%, mean ± 95% CI)</h3>
{study.accuracy_table().rename_axis(None).to_html(escape=True, border=0)}
{figure_html(fig)}
<h3>Every allocation (first seed's bits; means over seeds)</h3>
{summary.to_html(index=False, escape=True, border=0)}
"""


def _claims_html(results: Results) -> str:
    from .claims import claims_html

    return claims_html(results.claims())


def _page(results: Results, figures: dict, title: str, meta: dict, study_section: str = "") -> str:
    from .plot.export import PAGE_STYLE, figure_html, html_page

    cfg = results.config
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    table = results.display_table()
    parts = [f"<h2 id='{html.escape(stem)}'>{html.escape(str(fig.layout.title.text or stem))}</h2>" + figure_html(fig)
             for stem, fig in figures.items()]
    training = (f"fine-tuned {cfg.get('finetune_epochs')} epochs from float" if cfg.get("finetune")
                else "trained from scratch")
    body = f"""<h1>{html.escape(title)}</h1>
<p>{html.escape(str(cfg.get('model', '')))} on {html.escape(str(cfg.get('dataset', '')))}, seeds {cfg.get('seeds')},
float {cfg.get('epochs')} epochs, {training}. Generated by pdbviz {__version__} on {when}.</p>
<h2>Results</h2>
<p>Test accuracy: mean over seeds ± the half-width of its 95% confidence interval over seeds and test images;
seed std: the standard deviation over seeds; KiB: quantized-weight memory. The raw values are in
<code>results.csv</code>.</p>
{table.to_html(index=False, escape=True, border=0, classes="pdbviz-results")}
<h2>The paper's claims on these runs</h2>
<p>Effect: difference of mean test accuracy (points), paired by seed and test image; 95% CI for new seeds and new
test images (<code>pdbviz.stats</code>); verdicts as defined in <code>pdbviz.claims</code>. A verdict "within noise"
gives the smallest effect the experiment could detect and the seeds or test images that would decide.</p>
{_claims_html(results)}
{''.join(parts)}
{study_section}
<h2>LaTeX table</h2><pre>{html.escape(results.to_latex())}</pre>
<h2>Configuration</h2><pre>{html.escape(json.dumps(cfg, indent=2, ensure_ascii=False, default=str))}</pre>"""
    return html_page(title, body, meta, include_plotlyjs=True, style=PAGE_STYLE)
