"""A training callback that draws a run live: the loss of every batch and the test accuracy of every epoch."""

from __future__ import annotations

import time

from ..train import Callback


class LiveCurve(Callback):
    """Draws the loss per batch on ``curve.data[0]`` and the test accuracy per epoch on ``curve.data[1]``.

    The batch curve and ``progress`` are redrawn at most every 0.15 s (and at
    the last batch), so that a fast run does not flood the browser.
    """

    def __init__(self, progress, curve, every: float = 0.15):
        self.progress, self.curve, self.every = progress, curve, every
        self.xs, self.losses, self.last = [], [], 0.0

    def on_batch_end(self, s):
        step = (s.epoch - 1) * s.n_batches + s.batch
        self.xs.append(step)
        self.losses.append(s.loss)
        now = time.perf_counter()
        if now - self.last > self.every or step == s.epochs * s.n_batches:
            self.last = now
            self.progress.value = step
            with self.curve.batch_update():
                self.curve.data[0].x, self.curve.data[0].y = list(self.xs), list(self.losses)

    def on_epoch_end(self, s):
        rec = s.history.records[-1]
        with self.curve.batch_update():
            tr = self.curve.data[1]
            tr.x, tr.y = list(tr.x) + [s.epoch * s.n_batches], list(tr.y) + [100 * rec["test_acc"]]
