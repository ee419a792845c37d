"""The heat map of pairwise layer interactions (``pdbviz.interactions``); takes its pairs table, imports no torch."""

from __future__ import annotations

import numpy as np
import pandas as pd  # noqa: F401 - the example builds a pairs table

from .figures import _go, _need
from .theme import apply_theme, resolve_theme

_VALUES = {"interaction": "interaction (nats)", "relative": "interaction / sum alone", "z": "interaction / SE",
           "rho": "rho = I / sqrt(D_i D_j)"}


def interactions_figure(result, value: str = "interaction", title: str | None = None, theme: dict | str | None = None):
    """Layers x layers heat map of ``I = L(both) - L(i) - L(j) + L(none)``, red above 0 (super-additive), blue
    below; each cell shows the value and its standard error, ``*`` where it is beyond sampling error.

    Args:
        result: an ``Interactions`` (``pdbviz.interactions``) or its ``pairs`` table.
        value: ``"interaction"`` (nats), ``"relative"`` (of the two layers' summed increases), ``"z"`` or ``"rho"``.

    Example:
        >>> pairs = pd.DataFrame({"layer_a": ["a", "a", "b"], "layer_b": ["b", "c", "c"],
        ...                       "interaction": [0.02, -0.01, 0.0], "se": [0.005, 0.005, 0.004],
        ...                       "relative": [0.1, -0.05, 0.0], "z": [4.0, -2.0, 0.0], "rho": [0.2, -0.1, 0.0],
        ...                       "significant": [True, False, False]})
        >>> fig = interactions_figure(pairs)
        >>> fig.data[0].z.shape, fig.data[0].zmid
        ((3, 3), 0)
    """
    if value not in _VALUES:
        raise ValueError(f"value must be one of {tuple(_VALUES)}, got {value!r}")
    pairs = getattr(result, "pairs", result)
    _need(pairs, ["layer_a", "layer_b", value, "se", "significant"], "result.pairs")
    layers = list(getattr(result, "layers", ()) or dict.fromkeys([*pairs.layer_a, *pairs.layer_b]))
    pos = {n: i for i, n in enumerate(layers)}
    z = np.full((len(layers), len(layers)), np.nan)
    text = np.full(z.shape, "", dtype=object)
    for r in pairs.itertuples():
        i, j = pos[r.layer_a], pos[r.layer_b]
        v = float(getattr(r, value))
        z[i, j] = z[j, i] = v
        cell = f"{v:+.3f}" + (f"<br>± {r.se:.3f}" if value == "interaction" else "") + ("*" if r.significant else "")
        text[i, j] = text[j, i] = cell
    finite = z[np.isfinite(z)]
    bound = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
    go = _go()
    fig = go.Figure(go.Heatmap(z=z, x=layers, y=layers, text=text, texttemplate="%{text}", zmid=0, zmin=-bound,
                               zmax=bound, colorscale="RdBu_r", colorbar={"title": {"text": _VALUES[value]}},
                               hovertemplate="%{y} x %{x}: %{z:.4f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title_text="layer")
    fig.update_xaxes(title_text="layer")
    verdict = getattr(result, "verdict", None)
    head = title or "Do layer sensitivities add up? Interaction of quantizing two layers"
    if verdict and title is None:
        head += f"<br><sup>{verdict.split(':')[0]}; * beyond sampling error</sup>"
    fig.update_layout(title=head)
    return apply_theme(fig, resolve_theme(theme))
