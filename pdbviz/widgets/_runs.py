"""The BitAllocator's runs: training in the background, the history table and the accuracy-vs-memory scatter."""

from __future__ import annotations

import time

import pandas as pd

from ..quant import BitSchedule, memory_summary
from ._allocation import Fronts
from ._common import kib
from ._placement import fit_run_axes


class _RunControls:
    """Train, Stop, the runs' table and scatter of a ``BitAllocator`` (a mixin: the widgets are built there)."""

    def _on_click(self, trace, points, state) -> None:
        if points.point_inds:
            self.set_schedule(trace.customdata[points.point_inds[0]])
            self.status.value = f"loaded {trace.customdata[points.point_inds[0]]}"

    def select_run(self, index: int) -> None:
        """Load the bits of run ``index`` (0-based, a row of ``runs``) back into the sliders."""
        if not 0 <= index < len(self.runs):
            raise ValueError(f"run index must be in 0..{len(self.runs) - 1}, got {index}")
        self.set_schedule(self.runs.iloc[index].schedule)
        self.status.value = f"loaded run {int(self.runs.iloc[index].run)}"

    def points(self) -> pd.DataFrame:
        """What the scatter shows: one point per schedule over its complete runs (mean accuracy, number of
        runs), and each stopped run apart, as partial."""
        done = self.runs[self.runs.stopped == ""]
        agg = done.groupby("schedule", sort=False).agg(kib=("kib", "first"), test_acc=("test_acc", "mean"),
                                                       n=("run", "count"), last=("run", "max")).reset_index()
        return agg

    # -- training ---------------------------------------------------------
    def _train_float(self) -> None:
        from ..train import fit

        self.train_button.disabled = True
        self.status.value = "training the float model…"

        def job():
            fit(self.model, self.data, epochs=self.float_epochs, lr=self.float_lr, seed=self.seed,
                batch_size=self.batch_size, progress=False)

        self.worker.start(job, "float training", on_done=self._float_ready)

    def _float_ready(self) -> None:
        from ..inference import evaluate

        self.float_accuracy = 100 * evaluate(self.model, self.data)["accuracy"]
        self.fronts = Fronts(self.model, self.data, self.seed, self._example)
        # the line's width and opacity are given: the simple_white template draws shapes 0 wide by default
        self.scatter.add_hline(y=self.float_accuracy, line_dash="dash", line_color="#777777", line_width=1.2,
                               opacity=1, annotation_text=f"float-32 {self.float_accuracy:.2f}%",
                               annotation_position="top right", annotation_xshift=-6,
                               annotation_font={"size": 11, "color": "#555555"})
        self.train_button.disabled = False
        self.status.value = f"float model ready ({self.float_accuracy:.2f}%)"
        self.refresh_front()

    def train(self) -> bool:
        """Fine-tune under the current schedule in the background; False if a run is already going."""
        from ..experiment import finetune
        from ..train import StopEvent

        from ._live import LiveCurve

        if self.worker.busy:
            self.status.value = "a run is already going"
            return False
        sched = self.schedule()
        n_batches = self.data.train.n_batches(self.batch_size)
        self.progress.max, self.progress.value = self.epochs * n_batches, 0
        self.stop_event.clear()
        with self.curve.batch_update():
            for tr in self.curve.data:
                tr.x, tr.y = [], []
        def job():
            t0 = time.perf_counter()
            self.status.value = f"training {sched.to_string(self.model)}…"
            q, history = finetune(self.model, sched, self.data, epochs=self.epochs, lr=self.lr, seed=self.seed,
                                  batch_size=self.batch_size, progress=False,
                                  callbacks=[LiveCurve(self.progress, self.curve), StopEvent(self.stop_event)])
            self._record(sched, q, history, time.perf_counter() - t0)

        def done():
            self.train_button.disabled, self.stop_button.disabled = False, True

        self.train_button.disabled, self.stop_button.disabled = True, False
        return self.worker.start(job, "train", on_done=done)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current background jobs (float training or a run, and the predicted front) end."""
        t0 = time.perf_counter()
        if not self.worker.wait(timeout):
            return False
        while self._front_worker is not None:
            worker = self._front_worker
            left = None if timeout is None else max(0.0, timeout - (time.perf_counter() - t0))
            if not worker.wait(left):
                return False
            if worker is self._front_worker:
                return True
        return True

    def _record(self, sched: BitSchedule, q, history, seconds: float) -> None:
        from ..inference import evaluate

        acc = 100 * evaluate(q, self.data)["accuracy"]
        s = memory_summary(self.model, sched)
        row = {"run": len(self.runs) + 1, "schedule": sched.to_string(self.model), "avg_bits": s.avg_bits,
               "kib": s.quantized_weight_kib, "compression": s.compression, "test_acc": acc, "seconds": seconds,
               "stopped": history.stop_reason or ""}
        self.runs = pd.concat([self.runs, pd.DataFrame([row])], ignore_index=True) if len(self.runs) else \
            pd.DataFrame([row])
        self._draw_runs()
        self.history_table.value = self.runs.to_html(index=False, float_format=lambda v: f"{v:.2f}", border=0,
                                                     classes="pdbviz-history")
        self.progress.value = self.progress.max
        stopped = f" (stopped: {history.stop_reason})" if history.stop_reason else ""
        self.status.value = f"run {row['run']}: {acc:.2f}% at {kib(row['kib'])}{stopped}"

    def _draw_runs(self) -> None:
        """The runs on the scatter: one labelled point per schedule, stopped runs apart; axes fitted."""
        points, partial = self.points(), self.runs[self.runs.stopped != ""]
        with self.scatter.batch_update():
            tr = self.scatter.data[0]
            tr.x, tr.y, tr.customdata = list(points.kib), list(points.test_acc), list(points.schedule)
            tr.text = [f"#{r}" + (f" (n={n})" if n > 1 else "") for r, n in zip(points["last"], points.n)]
            part = self.scatter.data[1]
            part.x, part.y, part.customdata = list(partial.kib), list(partial.test_acc), list(partial.schedule)
        self._fit_axes()

    def _fit_axes(self) -> None:
        """Axes with room for the run labels, the labels placed so that none covers another."""
        fit_run_axes(self.scatter, self.float_accuracy)
