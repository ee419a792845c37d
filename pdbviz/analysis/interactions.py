"""Do layer sensitivities add up? Pairwise interactions of quantization, measured, and an allocation that uses them.

Every allocator that sums per-layer costs (HAWQ, ModelOpt, pdbviz's exact
front) assumes that quantizing two layers costs the sum of quantizing each
alone. ``interactions`` measures it. With ``L(S)`` the mean cross-entropy on
the evaluation samples when the layers in ``S`` are quantized (each weight
``W_b`` at the float weight's scale, ``quantized_at_scale``; everything else
float), the increase of one layer is ``D_i = L({i}) - L({})`` and the
interaction of two is::

    I_ij = L({i, j}) - L({i}) - L({j}) + L({})

zero when the two add up, positive when quantizing both costs more than the
sum (super-additive), negative when less. Its sampling error is paired over
the samples: ``I_ij`` is the mean of the per-sample values
``l_ij - l_i - l_j + l_0`` (the same samples in every term), so its standard
error is their standard deviation over ``sqrt(n)``. A pair interacts beyond
sampling error when ``|I_ij| / SE`` exceeds the normal quantile at ``0.05 /
(2 m)`` for ``m`` pairs (Bonferroni). The model's one-line verdict also
compares quantizing every measured layer at once with the sum of their
increases.

**Interaction-aware allocation.** The pairwise coefficient ``rho_ij = I_ij /
sqrt(D_i D_j)`` is unitless (for a second-order loss, ``D_i = e_i' H_ii e_i
/ 2`` and ``I_ij = e_i' H_ij e_j``, so ``rho`` is a cosine-like ratio that
does not depend on the noise's size). An allocation ``w`` of predicted
additive loss ``sum_l c_l(w_l)`` (any ``predicted_loss`` table) gets the
correction ``sum_ij rho_ij sqrt(c_i(w_i) c_j(w_j))`` over the measured pairs
(those within ``min_z`` standard errors of zero count as 0), in the table's
own units; ``rerank_front`` applies it to every point of the exact front
within a budget and ``allocate_with_interactions`` picks the least corrected
loss among them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..inference import select_output
from ..quant import BitSchedule
from ..quant.quantizers import FULL_PRECISION
from ._prepare import check_positive_int, prepared
from .front import Front, pareto_front
from .sensitivity import quantized_at_scale

#: models with at most this many layers get every pair; larger ones the ``DEFAULT_TOP_K`` most sensitive.
ALL_PAIRS_UP_TO = 12
#: how many of the most sensitive layers a larger model's pairs are taken among.
DEFAULT_TOP_K = 8
#: an interaction within this many standard errors of zero does not correct an allocation.
MIN_Z = 2.0
#: a model whose interactions stay within this fraction of the summed increases is "nearly additive".
NEARLY = 0.1
#: columns of ``Interactions.pairs``.
PAIR_COLUMNS = ["layer_a", "layer_b", "bits_a", "bits_b", "alone_a", "alone_b", "sum_alone", "both", "interaction",
                "se", "z", "relative", "rho", "significant"]


@dataclass(frozen=True)
class Interactions:
    """Pairwise interactions of quantization on one model (see the module docstring); losses in nats.

    Attributes:
        pairs: one row per pair (``PAIR_COLUMNS``): each layer's increase alone,
            their sum, the increase of both, the interaction ``I``, its standard
            error, ``z = I / se``, ``relative = I / sum_alone``, ``rho`` and
            whether it is beyond sampling error (Bonferroni over the pairs).
        singles: one row per layer: ``layer``, ``depth``, ``bits``, ``increase``, ``se``.
        base_loss: mean loss of the float model on the samples.
        together: increase with every measured layer quantized at once, and ``together_se``.
        n_samples: evaluation samples.
    """

    pairs: pd.DataFrame
    singles: pd.DataFrame
    base_loss: float
    together: float
    together_se: float
    n_samples: int
    layers: tuple[str, ...] = field(default=())

    @property
    def matrix(self) -> pd.DataFrame:
        """Interactions as a symmetric layers x layers frame (NaN on the diagonal and for unmeasured pairs)."""
        return self._square("interaction")

    @property
    def rho(self) -> pd.DataFrame:
        """``rho_ij = I_ij / sqrt(D_i D_j)`` as a symmetric frame (0 where an increase is not positive)."""
        return self._square("rho")

    def _square(self, column: str) -> pd.DataFrame:
        m = pd.DataFrame(np.nan, index=list(self.layers), columns=list(self.layers))
        for r in self.pairs.itertuples():
            m.loc[r.layer_a, r.layer_b] = m.loc[r.layer_b, r.layer_a] = getattr(r, column)
        return m

    @property
    def verdict(self) -> str:
        """One line on additivity for the model: together against the sum alone, and the pairs that interact."""
        total = float(self.singles.set_index("layer").increase.loc[list(self.layers)].sum())
        m = len(self.pairs)
        sig = self.pairs[self.pairs.significant]
        gap = self.together - total
        if sig.empty and abs(gap) <= 2 * self.together_se:
            word = "additive within noise"
        elif abs(gap) <= NEARLY * abs(total) and (sig.relative.abs() <= NEARLY).all():
            word = f"nearly additive (within {NEARLY:.0%})"
        else:
            word = "super-additive" if gap > 0 else "sub-additive"
        line = (f"{word}: quantizing the {len(self.layers)} layers together raises the loss by "
                f"{self.together:.4f} ± {self.together_se:.4f} nats against {total:.4f} from each alone; "
                f"{len(sig)} of {m} pairs interact beyond sampling error")
        if m:
            top = self.pairs.loc[self.pairs.interaction.abs().idxmax()]
            line += (f" (largest {top.layer_a} x {top.layer_b}: {top.interaction:+.4f} ± {top.se:.4f} nats, "
                     f"{top.relative:+.0%} of their summed increases)")
        return line

    def __repr__(self) -> str:
        return f"Interactions({len(self.layers)} layers, {len(self.pairs)} pairs, {self.n_samples} samples: " \
               f"{self.verdict})"


def _bits_of(bits, names: list[str], model: nn.Module) -> dict[str, int]:
    if isinstance(bits, bool):
        raise TypeError(f"bits must be an int, a schedule or {{layer: bits}}, got {bits!r}")
    if isinstance(bits, (int, np.integer)):
        out = dict.fromkeys(names, int(bits))
    elif isinstance(bits, BitSchedule):
        out = dict(zip(bits.layers, bits.w_bits))
    elif isinstance(bits, str):
        out = dict(zip((s := BitSchedule.from_string(bits, model)).layers, s.w_bits))
    elif isinstance(bits, Mapping):
        out = {str(k): int(v) for k, v in bits.items()}
    else:
        raise TypeError(f"bits must be an int, a schedule string, a BitSchedule or {{layer: bits}}, got "
                        f"{type(bits).__name__}")
    out = {k: v for k, v in out.items() if k in names and v != FULL_PRECISION}
    for k, v in out.items():
        if not 1 <= v <= 8:
            raise ValueError(f"bits of layer {k!r} must be in 1..8 (or 32 to leave it float), got {v}")
    if not out:
        raise ValueError(f"bits leaves no layer quantized; layers: {names}")
    return out


def _per_sample_loss(model, X, y, device, output, batch_size) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(X), batch_size):
            logits = select_output(model(X[i:i + batch_size].to(device)), output)
            out.append(nn.functional.cross_entropy(logits.float(), y[i:i + batch_size].to(device),
                                                   reduction="none").double().cpu())
    return torch.cat(out).numpy()


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan


def interactions(model: nn.Module, data, bits=2, layers=None, top_k: int | None = None, n_samples: int | None = 512,
                 weight_mode: str = "dorefa", batch_size: int = 256, seed: int = 0, split: str = "test",
                 output=None, device=None) -> Interactions:
    """Pairwise interactions of quantizing two layers against the sum of each alone, with sampling errors.

    Args:
        model: the float model (not changed; weights are swapped and restored).
        data: any form ``as_data`` accepts; ``n_samples`` of ``split`` (stratified, seeded).
        bits: weight bits of every layer (an int), or per layer (a schedule
            string such as ``"8-4-2-1"``, a ``BitSchedule`` or ``{layer: bits}``;
            layers at 32 are left out).
        layers: layers to consider (default: every quantizable weight layer).
        top_k: measure pairs among the ``top_k`` layers whose increase alone
            is largest; default every layer up to ``ALL_PAIRS_UP_TO`` layers,
            else ``DEFAULT_TOP_K``.
        weight_mode: the weight quantizer.

    Example:
        >>> from pdbviz import build_model, load_dataset
        >>> d = load_dataset("digits"); m = build_model("mlp", d.input_shape, 10)
        >>> r = interactions(m, d, bits=1, n_samples=100)
        >>> len(r.pairs), r.matrix.shape, r.verdict.split(":")[0].split(" (")[0] in (
        ...     "additive within noise", "nearly additive", "super-additive", "sub-additive")
        (3, (3, 3), True)
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if top_k is not None:
        top_k = check_positive_int(top_k, "top_k", minimum=2)
    with prepared(model, data, n_samples, seed, split, layers, device, output) as s:
        params = dict(s.weights)
        names = [n for n in s.depth if n in params]
        chosen_bits = _bits_of(bits, names, s.model)
        names = [n for n in names if n in chosen_bits]
        quantized = {n: quantized_at_scale(params[n], chosen_bits[n], weight_mode) for n in names}
        originals = {n: params[n].detach().clone() for n in names}

        def loss_with(group) -> np.ndarray:
            try:
                with torch.no_grad():
                    for n in group:
                        params[n].copy_(quantized[n])
                return _per_sample_loss(s.model, s.X, s.y, s.device, output, batch_size)
            finally:
                with torch.no_grad():
                    for n in group:
                        params[n].copy_(originals[n])

        l0 = loss_with(())
        alone = {n: loss_with((n,)) for n in names}
        singles = pd.DataFrame([(n, s.depth[n], chosen_bits[n], *_mean_se(alone[n] - l0)) for n in names],
                               columns=["layer", "depth", "bits", "increase", "se"])
        k = top_k or (len(names) if len(names) <= ALL_PAIRS_UP_TO else DEFAULT_TOP_K)
        top = set(singles.nlargest(min(k, len(names)), "increase").layer)
        measured = [n for n in names if n in top]
        pairs = list(combinations(measured, 2))
        crit = _bonferroni(len(pairs))
        inc = singles.set_index("layer").increase
        rows = []
        for a, b in pairs:
            i, se = _mean_se(loss_with((a, b)) - alone[a] - alone[b] + l0)
            da, db = float(inc[a]), float(inc[b])
            z = i / se if se > 0 else (0.0 if i == 0 else math.copysign(math.inf, i))
            rows.append((a, b, chosen_bits[a], chosen_bits[b], da, db, da + db, da + db + i, i, se, z,
                         i / (da + db) if da + db > 0 else math.nan,
                         i / math.sqrt(da * db) if da > 0 and db > 0 else 0.0, bool(abs(z) > crit)))
        together, together_se = _mean_se(loss_with(measured) - l0)
    return Interactions(pd.DataFrame(rows, columns=PAIR_COLUMNS), singles, float(l0.mean()), together, together_se,
                        len(l0), tuple(measured))


def _bonferroni(m: int, alpha: float = 0.05) -> float:
    from scipy.special import ndtri

    return float(ndtri(1 - alpha / (2 * max(m, 1))))


def _cost_lookup(loss: pd.DataFrame) -> dict:
    return {(r.layer, int(r.w_bits), int(r.a_bits)): float(r.loss) for r in loss.itertuples()}


def interaction_correction(result: Interactions, loss: pd.DataFrame, w_bits: Mapping[str, int],
                           a_bits: Mapping[str, int] | None = None, min_z: float = MIN_Z) -> float:
    """The pairwise correction of an allocation's additive predicted loss, in the units of ``loss``.

    ``sum_ij rho_ij sqrt(c_i(w_i) c_j(w_j))`` over the measured pairs with
    ``|z| >= min_z``; ``c`` from the ``predicted_loss`` table ``loss``
    (a layer at 32 bits, or without a row, costs 0).

    Example:
        >>> pairs = pd.DataFrame([("a", "b", 2, 2, 0.1, 0.1, 0.2, 0.3, 0.1, 0.01, 10.0, 0.5, 1.0, True)],
        ...                      columns=PAIR_COLUMNS)
        >>> r = Interactions(pairs, pd.DataFrame(), 0.0, 0.3, 0.01, 100, ("a", "b"))
        >>> loss = pd.DataFrame({"layer": ["a", "b"], "w_bits": 2, "a_bits": 32, "loss": [0.04, 0.09]})
        >>> round(interaction_correction(r, loss, {"a": 2, "b": 2}), 3)  # 1.0 * sqrt(0.04 * 0.09)
        0.06
    """
    cost = _cost_lookup(loss)
    a_bits = a_bits or {}
    total = 0.0
    for r in result.pairs.itertuples():
        if abs(r.z) < min_z or not r.rho:
            continue
        ca = cost.get((r.layer_a, int(w_bits.get(r.layer_a, FULL_PRECISION)),
                       int(a_bits.get(r.layer_a, FULL_PRECISION))), 0.0)
        cb = cost.get((r.layer_b, int(w_bits.get(r.layer_b, FULL_PRECISION)),
                       int(a_bits.get(r.layer_b, FULL_PRECISION))), 0.0)
        total += r.rho * math.sqrt(max(ca, 0.0) * max(cb, 0.0))
    return total


def rerank_front(front: Front, loss: pd.DataFrame, result: Interactions, budget=None,
                 min_z: float = MIN_Z) -> pd.DataFrame:
    """Every point of ``front`` within ``budget``, its additive loss, the pairwise correction and the corrected
    loss; the row with the least corrected loss has ``chosen`` True.

    Example:
        >>> net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
        >>> loss = pd.DataFrame({"layer": ["0", "0", "1", "1"], "w_bits": [1, 8, 1, 8], "a_bits": 32,
        ...                      "loss": [1.0, 0.0, 0.5, 0.0]})
        >>> pairs = pd.DataFrame([("0", "1", 1, 1, 1.0, 0.5, 1.5, 2.0, 0.5, 0.1, 5.0, 0.33, 0.71, True)],
        ...                      columns=PAIR_COLUMNS)
        >>> r = Interactions(pairs, pd.DataFrame(), 0.0, 2.0, 0.1, 100, ("0", "1"))
        >>> t = rerank_front(pareto_front(net, loss), loss, r)
        >>> t.round(2)[["avg_bits", "loss", "correction", "corrected_loss", "chosen"]].values.tolist()
        [[1.0, 1.5, 0.5, 2.0, False], [4.5, 0.5, 0.0, 0.5, False], [8.0, 0.0, 0.0, 0.0, True]]
    """
    last = front.index(budget) if (budget is not None or front.budget) else len(front) - 1
    rows = []
    for i in range(last + 1):
        row = front.table.iloc[i]
        w = dict(zip(front.layers, row.w_bits))
        a = dict(zip(front.layers, row.a_bits))
        corr = interaction_correction(result, loss, w, a, min_z)
        rows.append({"point": i, "avg_bits": float(row.avg_bits), "weight_kib": float(row.weight_kib),
                     "loss": float(row.loss), "correction": corr, "corrected_loss": float(row.loss) + corr,
                     "w_bits": tuple(row.w_bits), "a_bits": tuple(row.a_bits)})
    out = pd.DataFrame(rows)
    out["chosen"] = False
    if len(out):
        out.loc[out.corrected_loss.idxmin(), "chosen"] = True
    return out


def allocate_with_interactions(model: nn.Module, loss: pd.DataFrame, result: Interactions, budget,
                               monotone: bool = False, min_z: float = MIN_Z, **front_kwargs) -> BitSchedule:
    """The allocation of the exact front within ``budget`` (memory) with the least interaction-corrected loss.

    Example:
        >>> net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
        >>> loss = pd.DataFrame({"layer": ["0", "0", "1", "1"], "w_bits": [1, 8, 1, 8], "a_bits": 32,
        ...                      "loss": [1.0, 0.0, 0.5, 0.0]})
        >>> none = Interactions(pd.DataFrame(columns=PAIR_COLUMNS), pd.DataFrame(), 0.0, 0.0, 0.0, 100, ("0", "1"))
        >>> allocate_with_interactions(net, loss, none, 4.5).w_bits  # no interaction: the additive choice
        [8, 1]
    """
    front = pareto_front(model, loss, budget=budget, monotone=monotone, **front_kwargs)
    table = rerank_front(front, loss, result, budget, min_z)
    return front.schedule(int(table.point[table.chosen].iloc[0]))


__all__ = ["ALL_PAIRS_UP_TO", "DEFAULT_TOP_K", "Interactions", "MIN_Z", "NEARLY", "PAIR_COLUMNS",
           "allocate_with_interactions", "interaction_correction", "interactions", "rerank_front"]
