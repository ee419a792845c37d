"""QuantizerPlayground: a quantizer's staircase over a weight histogram, live."""

from __future__ import annotations

import numpy as np
import torch

from ..analysis import quantization_noise
from ..quant import WEIGHT_QUANTIZERS, quantize_activation, weight_quantizer
from ._common import ErrorArea, _widgets, figure_widget, view

#: the activation quantizer the playground offers besides every registered weight quantizer
ACTIVATIONS = "DoReFa activations"
#: at most this many value ticks carry a label; every level still gets its tick mark
MAX_LABELLED_TICKS = 9


def labelled_levels(n: int, most: int = MAX_LABELLED_TICKS) -> set[int]:
    """Which of ``n`` levels (in order) carry a label: all when they fit, else both ends and every ``s``-th level
    inward from each end (``s`` the smallest stride keeping at most ``most``), so that labels sit symmetrically
    and never on neighbouring levels; the middle level of an odd count too when no neighbour is labelled.

    Example:
        >>> sorted(labelled_levels(4)), sorted(labelled_levels(16))
        ([0, 1, 2, 3], [0, 2, 4, 6, 9, 11, 13, 15])
    """
    if n <= most:
        return set(range(n))
    stride = 2
    while 2 * len(range(0, (n - 1) // 2, stride)) + n % 2 > most:
        stride += 1
    shown = {k for i in range(0, (n - 1) // 2, stride) for k in (i, n - 1 - i)}  # the middle pair apart
    if n % 2 and not {n // 2 - 1, n // 2 + 1} & shown:
        shown.add(n // 2)
    return shown


def quantizer_menu() -> dict[str, str]:
    """The playground's quantizer menu, ``{label: mode}``: every registered weight quantizer (read from the
    registry, so a new one appears here by registering it) and the DoReFa activation quantizer.

    Example:
        >>> quantizer_menu()["DoReFa weights"], quantizer_menu()["DoReFa activations"]
        ('dorefa', 'activation')
    """
    menu = {f"{cls.label or name} weights": name for name, cls in WEIGHT_QUANTIZERS.items()}
    menu[ACTIVATIONS] = "activation"
    return menu


def quantizer_levels(mode: str, bits: int, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """What quantizer ``mode`` at ``bits`` makes of ``x``, and every level it can output for ``x``.

    ``mode`` is a registered weight mode (the levels are the decoded values of
    all its integer codes at the scale it chose for ``x``) or ``"activation"``
    (``k / (2^bits - 1)`` on the input scaled to [0, 1]). Returns
    ``(quantized, levels)`` as numpy arrays, the levels sorted.

    Example:
        >>> q, levels = quantizer_levels("dorefa", 3, torch.linspace(-0.1, 0.1, 5))
        >>> len(levels), bool(np.isin(np.unique(q), levels).all())
        (8, True)
    """
    if mode == "activation":
        n = 2**bits - 1
        return quantize_activation(x, bits).numpy(), np.arange(n + 1) / n
    cls = weight_quantizer(mode)
    if bits < cls.min_bits:
        raise ValueError(f"{cls.label or mode} weights need at least {cls.min_bits} bits, got bits={bits}")
    quantizer = cls(bits)
    quantizer.init_from(x)
    with torch.no_grad():
        q = quantizer(x)
        try:
            codes, scale = quantizer.encode(q, x)
            levels = quantizer.decode(np.arange(cls.levels(bits), dtype=codes.dtype), (cls.levels(bits),), scale)
            levels = np.unique(levels.numpy().astype(float))
        except NotImplementedError:  # a quantizer without integer codes: the values it produced
            levels = np.unique(q.numpy().astype(float))
    return q.numpy(), levels


class QuantizerPlayground:
    """Move the bits slider, watch the staircase, its levels and its error.

    The value axis (right) has one tick per level of the quantizer at the
    current bits (its whole grid at the scale it chose for these weights),
    and the title says how many levels it has and how many the sample uses:
    "3-bit DoReFa weights: 8 levels, 7 used".

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
        self.quantizers = quantizer_menu()
        self.errors = ErrorArea()
        self.bits = w.IntSlider(value=2, min=1, max=8, description="bits", continuous_update=True)
        self.quantizer = w.Dropdown(options=list(self.quantizers), value="DoReFa weights", description="quantizer")
        self.distribution = w.Dropdown(options=list(self.distributions), value="Gaussian", description="weights")
        self.readout = w.HTML()
        w0 = self.distributions["Gaussian"]
        base = plot.staircase_figure(w0, w0, bits=None)
        base.update_layout(width=None, autosize=True)  # the figure takes the notebook's width
        self.figure = figure_widget(base)
        self.quantizer.observe(self.errors.guard(lambda _change: self._quantizer_changed(), "quantizer"),
                               names="value")
        for control in (self.bits, self.distribution):
            control.observe(self.errors.guard(lambda _change: self.update(), "update"), names="value")
        self._quantizer_changed()
        self.widget = w.VBox([w.HBox([self.bits, self.quantizer, self.distribution]), self.readout, view(self.figure),
                              self.errors.widget])

    def _quantizer_changed(self) -> None:
        """The bits slider starts at the quantizer's minimum bit-width (LSQ needs 2), then redraw."""
        mode = self.quantizers[self.quantizer.value]
        low = 1 if mode == "activation" else weight_quantizer(mode).min_bits
        if self.bits.min != low:
            if self.bits.value < low:
                self.bits.value = low  # fires update() once
            self.bits.min = low
        self.update()

    def quantized(self) -> tuple[np.ndarray, np.ndarray]:
        """The current weights and what the current quantizer makes of them."""
        x, q, _levels = self._compute()
        return x, q

    def _compute(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = self.distributions[self.distribution.value]
        mode, bits = self.quantizers[self.quantizer.value], int(self.bits.value)
        t = torch.as_tensor(x, dtype=torch.float32)
        if mode == "activation":
            t = (t - t.min()) / (t.max() - t.min()).clamp_min(1e-12)  # show the [0, 1] input range
        q, levels = quantizer_levels(mode, bits, t)
        return t.numpy(), q, levels

    def update(self) -> None:
        """Redraw the staircase, the value axis (one tick per level), the title and the error read-out."""
        x, q, levels = self._compute()
        self.errors.clear()
        order = np.argsort(x)
        values = np.unique(q).astype(float)
        tol = 1e-5 * max(1.0, float(np.abs(levels).max()))
        used = int((np.abs(levels[:, None] - values[None, :]).min(axis=1) <= tol).sum())
        noise = quantization_noise(torch.as_tensor(x), torch.as_tensor(q))
        db, mse = noise["sqnr_db"], noise["mse"]
        shown = labelled_levels(len(levels))
        labels = [f"{v:.3g}" if i in shown else "" for i, v in enumerate(levels)]
        pad = 0.06 * float(levels[-1] - levels[0] or 1.0)
        name = self.quantizer.value
        with self.figure.batch_update():
            self.figure.data[0].x = x
            self.figure.data[1].x = x[order]
            self.figure.data[1].y = q[order]
            self.figure.layout.yaxis2.update(tickmode="array", tickvals=[float(v) for v in levels], ticktext=labels,
                                             range=[float(levels[0]) - pad, float(levels[-1]) + pad])
            self.figure.layout.title.text = f"{self.bits.value}-bit {name}: {len(levels)} levels, {used} used"
        self.readout.value = (f"<b>{len(levels)}</b> levels, <b>{used}</b> used by this sample &nbsp; "
                              f"MSE <b>{mse:.3g}</b> &nbsp; SQNR <b>{db:.1f} dB</b> "
                              "<span style='color:#777'>(after the best scale)</span>")
        self.mse, self.sqnr_db, self.levels, self.used = mse, db, len(levels), used
        self.level_values = levels

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
