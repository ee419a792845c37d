"""The BitAllocator's allocation: metric, budget unit and the predicted front, measured in the background."""

from __future__ import annotations

import copy
import math
import threading

from torch import nn

from ..quant import BitSchedule, memory_summary
from ._common import Worker, _widgets

#: the budget units of the allocation: (label, primary cost of the front)
BUDGET_UNITS = (("memory", "memory"), ("BOPs", "bops"))


def bops_text(value: float) -> str:
    """Bit operations per sample in millions, as the read-out and the BOPs budget show them."""
    return f"{value / 1e6:,.2f} MBOPs" if math.isfinite(value) else "BOPs unknown"


class Fronts:
    """Measures a trained float model by a sensitivity metric and computes the exact front from it, with caches.

    Every measurement and every front is computed on a copy of the model, so a
    training run reading the model at the same time sees it unchanged; results
    are kept per metric and per ``(metric, primary, monotone)``.

    Args:
        model: the trained float model.
        data: what the metrics are measured on.
        seed: the measurements' seed.
        example_input: one batch, for models without ``pdbviz_info`` (MACs).
    """

    def __init__(self, model: nn.Module, data, seed: int = 0, example_input=None):
        self.model, self.data, self.seed, self.example_input = model, data, seed, example_input
        self.frames: dict = {}
        self.fronts: dict = {}
        self._lock = threading.Lock()

    def frame(self, metric: str):
        """The float model measured by ``metric`` (a separability profile for the separability measures, else
        ``sensitivity_metrics`` at ``ALLOC_BITS``), computed on first use."""
        from ..analysis import separability_profile, sensitivity_metrics
        from ..analysis.entries import ALLOC_BITS
        from ..analysis.separability import METRICS as SEPARABILITY

        with self._lock:
            if metric in self.frames:
                return self.frames[metric]
        model = copy.deepcopy(self.model)
        if metric in SEPARABILITY:
            frame = separability_profile(model, self.data, metrics=(metric,), seed=self.seed)
        else:
            frame = sensitivity_metrics(model, self.data, metrics=[metric], bits=ALLOC_BITS, seed=self.seed)
        with self._lock:
            return self.frames.setdefault(metric, frame)

    def front(self, metric: str, primary: str = "memory", monotone: bool = True):
        """The exact front of the metric's predicted loss against ``primary`` (``"memory"`` or ``"bops"``):
        weight bits ``ALLOC_BITS``, inputs at 32 bits."""
        from ..analysis import pareto_front, predicted_loss
        from ..analysis.entries import ALLOC_BITS

        key = (metric, primary, bool(monotone))
        with self._lock:
            if key in self.fronts:
                return self.fronts[key]
        loss = predicted_loss(self.frame(metric), metric, w_bits=ALLOC_BITS, a_bits=(32,))
        front = pareto_front(copy.deepcopy(self.model), loss, primary, monotone=monotone,
                             example_input=self.example_input)
        with self._lock:
            return self.fronts.setdefault(key, front)

    def ready(self, metric: str, primary: str = "memory", monotone: bool = True) -> bool:
        """Whether ``front(metric, primary, monotone)`` is already computed."""
        with self._lock:
            return (metric, primary, bool(monotone)) in self.fronts


class _AllocationControls:
    """The allocation part of ``BitAllocator``: its controls, the front's background job, and ``allocate``.

    Uses the allocator's ``model``, ``data``, ``scatter``, ``status``,
    ``errors``, ``set_schedule`` and ``fronts`` (a ``Fronts`` once the float
    model is trained).
    """

    def _build_allocation_controls(self) -> None:
        from ..analysis import SENSITIVITY_METRICS

        w = _widgets()
        wide = {"description_width": "initial"}
        self.metric = w.Dropdown(options=SENSITIVITY_METRICS, value=self._initial_metric, description="metric",
                                 layout=w.Layout(width="200px"))
        self.monotone = w.Checkbox(value=True, description="non-increasing", indent=False,
                                   layout=w.Layout(width="120px"))
        self.budget_unit = w.ToggleButtons(options=BUDGET_UNITS, value="memory", style={"button_width": "80px"},
                                           tooltips=["a budget of quantized-weight memory (average bits)",
                                                     "a budget of bit operations per sample"],
                                           layout=w.Layout(width="auto"))
        low, high = (memory_summary(self.model, BitSchedule.uniform(self.model, b), self._example).bops
                     for b in (1, 8))
        ok = math.isfinite(low) and math.isfinite(high) and high > low
        low, high = (low / 1e6, high / 1e6) if ok else (0.0, 1.0)
        self.bops_budget = w.FloatSlider(value=low + (high - low) / 4, min=low, max=high, step=(high - low) / 200,
                                         description="budget (MBOPs)", style=wide, readout_format=",.2f",
                                         layout=w.Layout(display="none"))
        if not ok:
            self.budget_unit.disabled = True
            self.budget_unit.tooltip = "the model's MACs are unknown: BOPs cannot be counted"
        self.allocate_button = w.Button(description="Allocate", icon="sliders",
                                        tooltip="load the front's schedule at the budget into the sliders")

    def _example_input(self):
        """One input batch when the model does not say its MACs (BOPs need them), else None."""
        if math.isfinite(memory_summary(self.model, BitSchedule.uniform(self.model, 8)).bops):
            return None
        split = self.data.split("test", required=False) or self.data.train
        return split.first()[0][:1]

    def allocation_key(self) -> tuple[str, str, bool]:
        """``(metric, budget unit, non-increasing)``: which front the controls ask for."""
        return self.metric.value, self.budget_unit.value, bool(self.monotone.value)

    def allocation_budget(self) -> str | dict:
        """The budget the controls set: average bits (memory) or BOPs per sample."""
        if self.budget_unit.value == "bops":
            return {"bops": self.bops_budget.value * 1e6}
        return f"{self.budget.value:g} bits"

    def _allocation_changed(self) -> None:
        bops = self.budget_unit.value == "bops"
        self.budget.layout.display = "none" if bops else None
        self.bops_budget.layout.display = None if bops else "none"
        self.refresh_front()

    def allocate(self) -> bool:
        """Load the front's schedule at the budget into the sliders; True if done now.

        The separability measures (one forward pass) are computed at once if
        needed; the other metrics are measured in the background and the
        allocation follows when they are ready (False is returned meanwhile).
        """
        from ..analysis.separability import METRICS as SEPARABILITY

        if self.fronts is None:
            self.status.value = "the float model is still training: allocate when it is ready"
            return False
        metric, unit, monotone = key = self.allocation_key()
        if not self.fronts.ready(*key) and metric not in SEPARABILITY:
            self._pending_allocation = True
            self.status.value = f"measuring {metric} on the float model… the allocation follows"
            self.refresh_front()
            return False
        self._pending_allocation = False
        front = self.fronts.front(*key)
        self._allocating = True  # the preset menu says "allocated" for what the allocation loads
        try:
            self.set_schedule(front.choose(self.allocation_budget()))
        finally:
            self._allocating = False
        self.status.value = f"allocated by {metric} ({'non-increasing, ' if monotone else ''}{unit} budget)"
        if self.front_key != key:
            self._draw_front(key, front)
        return True

    def refresh_front(self) -> bool:
        """Compute (in the background) and draw the front the controls ask for; False before the float model is
        ready."""
        if self.fronts is None:
            return False
        with self._front_lock:
            self._front_dirty = True
            if self._front_running:
                return True  # the running job computes the newest setting before it ends
            self._front_running = True
        self._front_worker = Worker(self.errors, "predicted front")
        self._front_worker.start(self._front_job, "predicted front")
        return True

    def _front_job(self) -> None:
        try:
            while True:
                with self._front_lock:
                    if not self._front_dirty:
                        self._front_running = False
                        return
                    self._front_dirty = False
                key = self.allocation_key()
                if not self.fronts.ready(*key):
                    self.status.value = f"measuring {key[0]} on the float model…"
                front = self.fronts.front(*key)
                if key == self.allocation_key() and front is not self.front:
                    self._draw_front(key, front)
                    self.status.value = f"predicted front of {key[0]}: {len(front)} points"
                if key == self.allocation_key() and self._pending_allocation:
                    self.allocate()
        finally:
            with self._front_lock:
                self._front_running = False

    def _draw_front(self, key: tuple, front) -> None:
        metric, unit, monotone = key
        t = front.table
        self.front, self.front_key = front, key
        with self.scatter.batch_update():
            tr = self.scatter.data[2]
            tr.x, tr.y = list(t.weight_kib), list(t.loss)
            tr.customdata = [front.schedule(i).to_string(self.model) for i in range(len(front))]
            tr.text = [f"{a:.2f} average bits, {bops_text(b)}" for a, b in zip(t.avg_bits, t.bops)]
            tr.mode = "lines+markers" if unit == "memory" else "markers"
            tr.name = (f"predicted front ({metric}{', non-increasing' if monotone else ''}; least loss per "
                       f"{'memory' if unit == 'memory' else 'BOPs'})")
            tr.visible = True
        self._fit_axes()
