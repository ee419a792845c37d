"""QuantizerPlayground: a quantizer's staircase over a weight histogram, live."""

from __future__ import annotations

import numpy as np
import torch

from ..analysis import quantization_noise
from ..quant import dorefa_weight, quantize_activation, symmetric_weight
from ._common import ErrorArea, _widgets

QUANTIZERS = {"DoReFa weights": "dorefa", "symmetric weights": "symmetric", "DoReFa activations": "activation"}


class QuantizerPlayground:
    """Move the bits slider, watch the staircase, its levels and its error.

    Args:
        model: optional model; its Conv2d/Linear weights become selectable distributions.
        n: number of samples drawn for the Gaussian and Laplace distributions.
        seed: seed of those samples.

    Example (in a notebook cell)::

        from pdbviz.widgets import QuantizerPlayground
        QuantizerPlayground()
    """

    def __init__(self, model=None, n: int = 4000, seed: int = 0):
        w = _widgets()
        from .. import plot
        from ..quant import float_weight, quantizable_layers

        rng = np.random.default_rng(seed)
        self.distributions = {"Gaussian": rng.normal(0, 0.05, n), "Laplace": rng.laplace(0, 0.035, n)}
        if model is not None:
            for name in quantizable_layers(model):
                self.distributions[f"layer {name}"] = float_weight(model, name).cpu().numpy().ravel()
        self.errors = ErrorArea()
        self.bits = w.IntSlider(value=2, min=1, max=8, description="bits", continuous_update=True)
        self.quantizer = w.Dropdown(options=list(QUANTIZERS), value="DoReFa weights", description="quantizer")
        self.distribution = w.Dropdown(options=list(self.distributions), value="Gaussian", description="weights")
        self.readout = w.HTML()
        w0 = self.distributions["Gaussian"]
        base = plot.staircase_figure(w0, w0, bits=None)
        import plotly.graph_objects as go

        self.figure = go.FigureWidget(base)
        for control in (self.bits, self.quantizer, self.distribution):
            control.observe(self.errors.guard(lambda _change: self.update(), "update"), names="value")
        self.update()
        self.widget = w.VBox([w.HBox([self.bits, self.quantizer, self.distribution]), self.readout, self.figure,
                              self.errors.widget])

    def quantized(self) -> tuple[np.ndarray, np.ndarray]:
        """The current weights and what the current quantizer makes of them."""
        x = self.distributions[self.distribution.value]
        kind, bits = QUANTIZERS[self.quantizer.value], int(self.bits.value)
        t = torch.as_tensor(x, dtype=torch.float32)
        if kind == "symmetric" and bits < 2:
            raise ValueError("symmetric weights need at least 2 bits (2^k - 1 levels with an exact zero)")
        if kind == "activation":
            t = (t - t.min()) / (t.max() - t.min()).clamp_min(1e-12)  # show the [0, 1] input range
            q = quantize_activation(t, bits)
        elif kind == "symmetric":
            q = symmetric_weight(t, bits)
        else:
            q = dorefa_weight(t, bits)
        return t.numpy(), q.numpy()

    def update(self) -> None:
        """Redraw the staircase, the levels and the error read-out for the current controls."""
        x, q = self.quantized()
        self.errors.clear()
        order = np.argsort(x)
        levels = np.unique(q)
        noise = quantization_noise(torch.as_tensor(x), torch.as_tensor(q))
        db, mse = noise["sqnr_db"], noise["mse"]
        with self.figure.batch_update():
            self.figure.data[0].x = x
            self.figure.data[1].x = x[order]
            self.figure.data[1].y = q[order]
            self.figure.layout.title.text = f"{self.bits.value}-bit {self.quantizer.value}: {len(levels)} levels"
        self.readout.value = (f"<b>{len(levels)}</b> levels &nbsp; MSE <b>{mse:.3g}</b> &nbsp; "
                              f"SQNR <b>{db:.1f} dB</b> <span style='color:#777'>(after the best scale)</span>")
        self.mse, self.sqnr_db, self.levels = mse, db, len(levels)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
