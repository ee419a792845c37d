"""SweepDashboard: a sweep's progress and its accuracy-vs-memory plot, growing live as runs land."""

from __future__ import annotations

import html

import pandas as pd

from ..sweeps import RunRecord
from ._common import ErrorArea, StaticFigure, Worker, _widgets, figure_widget, kib, view

#: marker symbol of each schedule shape (as in the report's accuracy-vs-memory figure)
SYMBOLS = {"float": "square", "uniform": "circle", "decreasing": "triangle-down", "increasing": "triangle-up",
           "allocated": "star", "custom": "diamond"}


class SweepDashboard:
    """A live view of ``pdbviz.sweep``: a progress bar, and accuracy against memory with one point per run.

    Feed it the records of a sweep (``on_result=dashboard.add``), or let it
    run the sweep in the background (``dashboard.run(...)``), which keeps the
    notebook responsive so points can be clicked while runs land. Clicking a
    point shows that run (schedule, seed, accuracy, memory, per-epoch test
    accuracy) and, when an ``allocator`` is given, loads its bits into that
    ``BitAllocator``'s sliders. The dotted line is the Pareto frontier of the
    quantized runs so far.

    Args:
        allocator: a ``BitAllocator`` on the same model, or None.

    Example (in a notebook cell)::

        from pdbviz.widgets import SweepDashboard
        dash = SweepDashboard(); dash
        dash.run("digits", schedules=["float", "1", "2", "halving", "alloc:1.5"], seeds=[0, 1, 2], out="sweep-digits")
    """

    def __init__(self, allocator=None):
        w = _widgets()
        self.allocator = allocator
        self.records: list[RunRecord] = []
        self.points: list[RunRecord] = []  # what the scatter shows, in its point order
        self.selected: RunRecord | None = None
        self.results = None
        self.errors = ErrorArea()
        self.worker = Worker(self.errors, "sweep")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="runs", layout=w.Layout(width="320px"))
        self.status = w.HTML("<i>waiting for the first run</i>")
        self.details = w.HTML("<i>click a point to see its run</i>")
        self._build_figures()
        self.widget = w.VBox([w.HBox([self.progress, self.status]), w.HBox([view(self.figure), view(self.curve)]),
                              self.details, self.errors.widget])

    def _build_figures(self) -> None:
        import plotly.graph_objects as go

        from .. import plot

        self.figure = figure_widget(layout={"title": "accuracy vs memory (click a point)", "width": 560,
                                              "height": 380, "template": "simple_white",
                                              "xaxis": {"title": "quantized-weight memory (KiB)", "type": "log"},
                                              "yaxis_title": "test accuracy (%)", "showlegend": False})
        self.figure.add_trace(go.Scatter(x=[], y=[], mode="markers", name="runs", text=[], customdata=[],
                                         marker={"size": 10, "color": plot.OKABE_ITO[4]},
                                         hovertemplate="%{text}<br>%{y:.2f}% at %{x:.2f} KiB<extra></extra>"))
        self.figure.add_trace(go.Scatter(x=[], y=[], mode="lines", name="Pareto frontier", hoverinfo="skip",
                                         line={"color": "#666666", "dash": "dot", "shape": "hv"}))
        if not isinstance(self.figure, StaticFigure):  # a static figure cannot be clicked
            self.figure.data[0].on_click(self.errors.guard(self._on_click, "point"))
        self.curve = figure_widget(layout={"title": "the selected run", "width": 380, "height": 380,
                                             "template": "simple_white", "xaxis_title": "epoch",
                                             "yaxis_title": "test accuracy (%)"})
        self.curve.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", line={"color": plot.OKABE_ITO[1]}))

    # -- feeding ------------------------------------------------------------
    def add(self, record: RunRecord) -> None:
        """Add one landed run (pass this method as ``sweep(on_result=...)``)."""
        from .. import plot

        if not isinstance(record, RunRecord):
            raise TypeError(f"record must be a pdbviz.sweep.RunRecord, got {type(record).__name__}")
        self.records.append(record)
        self.progress.max, self.progress.value = max(record.total, 1), record.done
        state = "failed: " + html.escape(record.error) if record.error else f"{record.test_acc:.2f}%"
        self.status.value = (f"{record.done} / {record.total} runs &nbsp; last: <b>{html.escape(record.label)}</b> "
                             f"(seed {record.seed}) {state}{' (resumed)' if record.resumed else ''}")
        if record.error:
            return
        self.points.append(record)
        quant = [i for i, r in enumerate(self.points) if r.shape != "float"]
        front = [quant[j] for j in plot.pareto_frontier([self.points[i].kib for i in quant],
                                                        [self.points[i].test_acc for i in quant])]
        colours = {shape: plot.OKABE_ITO[i % len(plot.OKABE_ITO)] for i, shape in enumerate(SYMBOLS)}
        with self.figure.batch_update():
            tr = self.figure.data[0]
            tr.x, tr.y = [r.kib for r in self.points], [r.test_acc for r in self.points]
            tr.text = [f"{r.label} (seed {r.seed})" for r in self.points]
            tr.customdata = [r.schedule for r in self.points]
            tr.marker.symbol = [SYMBOLS.get(r.shape, "circle") for r in self.points]
            tr.marker.color = [colours.get(r.shape, "#000000") for r in self.points]
            line = self.figure.data[1]
            line.x, line.y = [self.points[i].kib for i in front], [self.points[i].test_acc for i in front]

    def run(self, *args, **kwargs) -> bool:
        """Run ``pdbviz.sweep(*args, **kwargs)`` in the background, feeding this dashboard; False if one is going.

        The ``Results`` land in ``self.results``; an error shows in the dashboard.
        """
        from ..sweeps import sweep

        if "on_result" in kwargs:
            raise TypeError("on_result is the dashboard's own; use SweepDashboard.add from your callback instead")
        kwargs.setdefault("progress", False)

        def job():
            self.results = sweep(*args, on_result=self.add, **kwargs)
            self.status.value += " &nbsp; <b>done</b>"

        return self.worker.start(job, "sweep")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a sweep started by ``run`` ends; True if it did within ``timeout``."""
        return self.worker.wait(timeout)

    # -- clicking -------------------------------------------------------------
    def _on_click(self, trace, points, state) -> None:
        if points.point_inds:
            self.select(points.point_inds[0])

    def select(self, index: int) -> RunRecord:
        """Show run ``index`` (0-based, as plotted) and load its bits into the allocator, if any."""
        if not 0 <= index < len(self.points):
            raise ValueError(f"point index must be in 0..{len(self.points) - 1}, got {index}")
        r = self.selected = self.points[index]
        self.details.value = (f"<b>{html.escape(r.label)}</b> (entry <code>{html.escape(r.entry)}</code>), seed "
                              f"{r.seed}: <b>{r.test_acc:.2f}%</b> at {kib(r.kib)} ({r.avg_bits:.2f} average bits), "
                              f"bits <code>{html.escape(r.schedule)}</code>, trained {r.train_seconds:.1f} s; "
                              f"{html.escape(r.dataset)} / {html.escape(r.model)}, run {r.key}")
        h = r.history if isinstance(r.history, pd.DataFrame) else pd.DataFrame(columns=["epoch", "test_acc"])
        with self.curve.batch_update():
            self.curve.data[0].x, self.curve.data[0].y = list(h.epoch), [100 * a for a in h.test_acc]
            self.curve.layout.title.text = f"{r.label}, seed {r.seed}"
        if self.allocator is not None:
            self.allocator.set_schedule(r.schedule if r.shape != "float" else "32")
        return r

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
