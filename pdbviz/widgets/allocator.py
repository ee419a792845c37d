"""BitAllocator: set each layer's bits, see the memory at once, retrain live, compare runs."""

from __future__ import annotations

import threading
import time

import pandas as pd

from ..data import as_data
from ..models import build_model
from ..quant import ALLOWED_BITS, BitSchedule, input_bits_allowed, memory_report, quantizable_layers
from ..quant.presets import PRESETS
from ._allocation import _AllocationControls, Fronts, bops_text
from ._runs import _RunControls
from ._common import ErrorArea, StaticFigure, Worker, _widgets, figure_widget, kib, view
from ._placement import LABEL_POSITIONS, fit_run_axes, label_positions, padded_range  # noqa: F401 - re-exported

#: the preset menu: (label, entry); "uniform" takes the k slider, "alloc" the metric and budget controls
PRESET_MENU = (("uniform k-bit", "uniform"), *((PRESETS[k].label, k) for k in ("halving", "linear", "increasing")),
               ("allocated (metric, budget)", "alloc"), ("custom", "custom"))
class BitAllocator(_AllocationControls, _RunControls):
    """A slider per layer for weight (and activation) bits, presets, a live memory table, and Train.

    Train fine-tunes the float model under the current schedule in a background
    thread (progress bar, live curve, Stop button); each finished run joins the
    history table and the accuracy-vs-memory plot, where clicking a point loads
    its bits back into the sliders. The one-line schedule string can be copied
    and pasted back. The read-out gives the memory and the bit operations per
    sample (BOPs, ``sum MACs * w_bits * a_bits``).

    Allocation: once the float model is trained, the chosen ``metric`` is
    measured on it in the background (once per metric; a copy of the model is
    measured, so training goes on meanwhile) and the exact front of predicted
    loss against the chosen budget unit (memory or BOPs) is drawn on the plot
    against its own axis, "predicted loss increase" (a prediction of the
    metric, not an accuracy). Clicking a front point loads its bits; Allocate
    (or the "allocated" preset) loads the front's point at the budget. The
    front chooses weight bits among ``ALLOC_BITS`` (1, 2, 4, 8) with inputs at
    32 bits; "non-increasing" keeps the paper's decreasing shape. The defaults
    (Fisher criterion, non-increasing, memory) give the separability
    allocation of ``allocate_bits``.

    Args:
        model: a trained float model, or a zoo model name (trained here first, in the background).
        data: any form ``as_data`` accepts (a dataset name, arrays, a Dataset...).
        epochs, lr: fine-tuning of each run.
        float_epochs: training of the float model when ``model`` is a name.
        seed: seed of every run (and of the measurements).
        metric: the sensitivity metric of the allocation, one of ``SENSITIVITY_METRICS``.
    """

    def __init__(self, model="lenet", data="digits", epochs: int = 3, lr: float = 1e-3, float_epochs: int = 15,
                 seed: int = 0, batch_size: int = 64, float_lr: float = 3e-3, metric: str = "fisher"):
        from ..analysis import SENSITIVITY_METRICS

        if metric not in SENSITIVITY_METRICS:
            raise ValueError(f"metric must be one of {', '.join(SENSITIVITY_METRICS)}, got {metric!r}")
        self.data = as_data(data)
        self.epochs, self.lr, self.float_epochs, self.seed = epochs, lr, float_epochs, seed
        self.batch_size, self.float_lr = batch_size, float_lr
        if isinstance(model, str):
            self.model = build_model(model, self.data.input_shape, self.data.num_classes, seed=seed)
            self._needs_training = True
        else:
            self.model, self._needs_training = model, False
        self.layers = quantizable_layers(self.model)
        self.errors = ErrorArea()
        self.worker = Worker(self.errors, "train")
        self.stop_event = threading.Event()
        self.runs = pd.DataFrame(columns=["run", "schedule", "avg_bits", "kib", "compression", "test_acc", "seconds",
                                          "stopped"])
        self.float_accuracy: float | None = None
        self.front = None  # the Front drawn on the plot, for front_key
        self.front_key: tuple | None = None  # (metric, budget unit, non-increasing)
        self.fronts: Fronts | None = None  # measurements and fronts of the float model, once it is trained
        self._front_lock = threading.Lock()
        self._front_dirty = self._front_running = self._pending_allocation = False
        self._front_worker: Worker | None = None
        self._example = self._example_input()
        self._setting = False
        self.last_readout_ms = float("nan")
        self._initial_metric = metric
        self._allocating = False
        self._preset_of = self._preset_schedules()
        self._build_controls()
        self._build_figures()
        self._connect()
        self.widget = self._layout()
        self.set_schedule(BitSchedule.decreasing(self.model))
        if self._needs_training:
            self._train_float()
        else:
            self._float_ready()

    def _preset_schedules(self) -> dict[str, str]:
        """``{schedule string: preset entry}`` of the fixed presets, so the menu can name what the sliders show."""
        from ..experiment import resolve_schedule

        return {resolve_schedule(e, self.model).schedule.to_string(self.model): e
                for e in ("halving", "linear", "increasing")}

    def _sync_preset(self, sched: BitSchedule, text: str) -> None:
        """The preset menu names what the sliders show: a preset, "uniform" (with its k) or "custom"."""
        if self._allocating:
            entry = "alloc"
        else:
            entry = self._preset_of.get(text)
            w_bits = set(sched.w_bits)
            if entry is None and len(w_bits) == 1 and set(sched.a_bits) == {32} and min(w_bits) <= self.k.max:
                entry, self.k.value = "uniform", min(w_bits)
        self.preset.value = entry or "custom"

    def _build_controls(self) -> None:
        w = _widgets()
        style = {"description_width": "110px"}
        inputs = input_bits_allowed(self.model)
        self.w_sliders = {n: w.SelectionSlider(options=ALLOWED_BITS, value=8, description=n, style=style,
                                               continuous_update=True, layout=w.Layout(width="360px"))
                          for n in self.layers}
        self.a_sliders = {n: w.SelectionSlider(options=ALLOWED_BITS, value=32, description="input bits", style=style,
                                               continuous_update=True, layout=w.Layout(width="300px"),
                                               disabled=not inputs[n])
                          for n in self.layers}
        self.preset = w.Dropdown(options=PRESET_MENU, value="halving", description="preset")
        wide = {"description_width": "initial"}
        self.k = w.IntSlider(value=2, min=1, max=8, description="k (uniform)", style=wide)
        self.budget = w.FloatSlider(value=1.5, min=1.0, max=8.0, step=0.1, description="budget (avg bits)", style=wide,
                                    readout_format=".1f")
        self.apply_button = w.Button(description="Apply preset", icon="magic")
        self._build_allocation_controls()
        self.config = w.Text(description="schedule", continuous_update=False, layout=w.Layout(width="420px"),
                             style={"description_width": "70px"})
        self.readout = w.HTML()
        self.table = w.HTML()
        self.train_button = w.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="", layout=w.Layout(width="260px"))
        self.status = w.HTML()
        self.history_table = w.HTML("<i>no runs yet: press Train</i>")

    def _build_figures(self) -> None:
        import plotly.graph_objects as go

        from .. import plot

        self.curve = figure_widget(layout={"title": "live training", "autosize": True, "height": 340,
                                             "template": "simple_white", "xaxis_title": "batch",
                                             "xaxis": {"tickformat": "~s"}, "yaxis": {"tickformat": ".2~f"},
                                             "yaxis_title": "loss", "yaxis2": {"overlaying": "y", "side": "right",
                                                                               "title": "test acc (%)",
                                                                               "tickformat": ".1f",
                                                                               "tickmode": "auto"},
                                             "legend": {"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right",
                                                        "yanchor": "bottom"}, "margin": {"r": 60}})
        self.curve.add_trace(go.Scatter(x=[], y=[], mode="lines", name="loss", line={"color": plot.OKABE_ITO[0]}))
        self.curve.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="test acc", yaxis="y2",
                                        line={"color": plot.OKABE_ITO[1]}))
        self.scatter = figure_widget(layout={"title": "accuracy vs memory (click a point to load it)",
                                               "autosize": True, "height": 400, "template": "simple_white",
                                               "xaxis_title": "quantized-weight memory (KiB)",
                                               "xaxis": {"tickformat": ",.3~r"}, "yaxis": {"tickformat": ".1f"},
                                               "yaxis_title": "test accuracy (%)",
                                               "yaxis2": {"overlaying": "y", "side": "right", "showgrid": False,
                                                          "title": "predicted loss increase", "rangemode": "tozero",
                                                          "tickformat": ".2~g", "tickmode": "auto"},
                                               "legend": {"orientation": "h", "y": -0.25}, "margin": {"r": 70}})
        self.scatter.add_trace(go.Scatter(x=[], y=[], mode="markers+text", name="runs (mean)", text=[],
                                          customdata=[], textposition="top center", cliponaxis=False,
                                          marker={"size": 11, "color": plot.OKABE_ITO[2]},
                                          hovertemplate="%{customdata}: %{y:.2f}% at %{x:.2f} KiB<extra></extra>"))
        self.scatter.add_trace(go.Scatter(x=[], y=[], mode="markers", name="stopped (partial)", customdata=[],
                                          marker={"size": 11, "symbol": "circle-open", "color": plot.OKABE_ITO[3],
                                                  "line": {"width": 2}},
                                          hovertemplate="%{customdata}: stopped early, %{y:.2f}% at %{x:.2f} KiB"
                                                        "<extra></extra>"))
        self.scatter.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="predicted front", yaxis="y2",
                                          customdata=[], text=[], visible=False,
                                          marker={"size": 7, "symbol": "diamond", "color": plot.OKABE_ITO[4]},
                                          line={"dash": "dot", "color": plot.OKABE_ITO[4]},
                                          hovertemplate="%{customdata}: predicted loss increase %{y:.3g} at "
                                                        "%{x:.2f} KiB, %{text}<extra></extra>"))

    def _connect(self) -> None:
        for trace in self.scatter.data:
            if hasattr(trace, "on_click") and not isinstance(self.scatter, StaticFigure):
                trace.on_click(self.errors.guard(self._on_click, "point"))
        on_change = self.errors.guard(lambda _c: self._sliders_changed(), "sliders")
        for s in list(self.w_sliders.values()) + list(self.a_sliders.values()):
            s.observe(on_change, names="value")
        self.config.observe(self.errors.guard(lambda c: self.set_schedule(c["new"]), "schedule string"),
                            names="value")
        self.apply_button.on_click(self.errors.guard(lambda _b: self.apply_preset(), "preset"))
        self.allocate_button.on_click(self.errors.guard(lambda _b: self.allocate(), "allocate"))
        refresh = self.errors.guard(lambda _c: self._allocation_changed(), "predicted front")
        for control in (self.metric, self.monotone, self.budget_unit):
            control.observe(refresh, names="value")
        self.train_button.on_click(self.errors.guard(lambda _b: self.train(), "train"))
        self.stop_button.on_click(lambda _b: self.stop_event.set())

    def _layout(self):
        w = _widgets()
        rows = [w.HBox([self.w_sliders[n], self.a_sliders[n]]) for n in self.layers]
        # each plot stretches over its grid cell (a column box) and plotly sizes the figure to it
        cell = {"width": "100%", "min_width": "0", "overflow": "hidden"}
        plots = w.GridBox([w.VBox([view(self.curve)], layout=w.Layout(**cell)),
                           w.VBox([view(self.scatter)], layout=w.Layout(**cell))],
                          layout=w.Layout(width="100%", grid_template_columns="minmax(0, 2fr) minmax(0, 3fr)",
                                          grid_gap="8px"))
        return w.VBox([
            w.HTML(f"<b>{type(self.model).__name__}</b> on <b>{self.data.name}</b>: weight bits per layer "
                   "(forward order) and the bits of each layer's input"),
            *rows,
            w.HBox([self.preset, self.k, self.apply_button]),
            w.HBox([w.HTML("<b>allocate</b> by", layout=w.Layout(width="80px")), self.metric, self.monotone]),
            w.HBox([w.HTML("budget of", layout=w.Layout(width="80px")), self.budget_unit, self.budget,
                    self.bops_budget, self.allocate_button], layout=w.Layout(flex_flow="row wrap")),
            self.config, self.readout, self.table,
            w.HBox([self.train_button, self.stop_button, self.progress, self.status]),
            plots,
            self.history_table, self.errors.widget,
        ], layout=w.Layout(width="100%"))

    # -- schedule <-> sliders ----------------------------------------------
    def schedule(self) -> BitSchedule:
        """The schedule the sliders show."""
        return BitSchedule.from_list(self.model, [self.w_sliders[n].value for n in self.layers],
                                     [self.a_sliders[n].value for n in self.layers])

    def set_schedule(self, schedule: BitSchedule | str) -> None:
        """Move the sliders to ``schedule`` (a BitSchedule or its one-line string)."""
        if isinstance(schedule, str):
            schedule = BitSchedule.from_string(schedule, self.model)
        self._setting = True
        try:
            for n in self.layers:
                spec = schedule[n]
                self.w_sliders[n].value = spec.w_bits
                self.a_sliders[n].value = spec.a_bits if not self.a_sliders[n].disabled else 32
        finally:
            self._setting = False
        self._sliders_changed()

    def _sliders_changed(self) -> None:
        if self._setting:
            return
        t0 = time.perf_counter()
        sched = self.schedule()
        report = memory_report(self.model, sched, self._example)
        table, s = report.table, report.summary
        text = sched.to_string(self.model)
        if self.config.value != text:
            self._setting = True
            try:
                self.config.value = text
            finally:
                self._setting = False
        self._sync_preset(sched, text)
        self.readout.value = (f"quantized weights <b>{kib(s.quantized_weight_kib)}</b> "
                              f"(float-32 {kib(s.float32_weight_kib)}) &nbsp; <b>{s.compression:.1f}×</b> smaller "
                              f"&nbsp; <b>{s.avg_bits:.2f}</b> average bits &nbsp; <b>{bops_text(s.bops)}</b> "
                              f"per sample (float-32 {bops_text(s.float32_bops)})")
        self.table.value = table.to_html(index=False, float_format=lambda v: f"{v:.2f}", border=0)
        self.errors.clear()
        self.last_readout_ms = 1000 * (time.perf_counter() - t0)

    def apply_preset(self) -> None:
        """Set the sliders from the preset menu (and the k slider; "allocated" is ``allocate()``)."""
        from ..experiment import resolve_schedule

        entry = self.preset.value
        if entry == "alloc":
            self.allocate()
            return
        if entry == "custom":
            self.status.value = "custom: move the sliders or paste a schedule"
            return
        if entry == "uniform":
            entry = str(self.k.value)
        self.set_schedule(resolve_schedule(entry, self.model).schedule)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def explore(model="lenet", data="digits", **kwargs) -> BitAllocator:
    """The one-liner: a BitAllocator on the embedded digits (or your model and data).

    Example (in a notebook cell)::

        import pdbviz
        pdbviz.explore()
    """
    return BitAllocator(model, data, **kwargs)
