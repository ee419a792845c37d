"""Per-layer quantization error and accuracy sensitivity (no retraining)."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from ..data import as_data
from ..inference import calibrate, evaluate
from ..quant import BitSchedule, BitSpec, float_weight, quantizable_layers, quantize
from ..quant.convert import check_schedule
from ..quant.quantizers import FULL_PRECISION, check_bits, weight_quantizer


def quantization_noise(w: torch.Tensor, wq: torch.Tensor) -> dict[str, float]:
    """Noise of ``wq`` as an approximation of ``w``, after the best least-squares scale.

    DoReFa maps weights into [-1, 1] whatever their scale (BatchNorm absorbs
    it), so ``wq`` is first rescaled by ``a = <w, wq> / <wq, wq>``. Returns
    ``{"sqnr_db": 10 log10(||w||^2 / ||w - a wq||^2), "mse": mean((w - a wq)^2), "scale": a}``.
    """
    w, wq = torch.as_tensor(w).detach().double().flatten(), torch.as_tensor(wq).detach().double().flatten()
    denom = float(wq @ wq)
    a = float(w @ wq) / denom if denom > 0 else 0.0
    err = w - a * wq
    noise, signal = float((err**2).sum()), float((w**2).sum())
    if noise == 0:
        db = math.inf
    else:
        db = 10 * math.log10(signal / noise) if signal > 0 else -math.inf
    return {"sqnr_db": db, "mse": noise / max(len(w), 1), "scale": a}


def quantized_at_scale(w: torch.Tensor, bits: int, weight_mode: str = "dorefa") -> torch.Tensor:
    """``a Q_b(w)``: the weight quantized at ``bits`` by ``weight_mode``, at the float weight's scale.

    ``a = <w, Q_b(w)> / <Q_b(w), Q_b(w)>`` is the least-squares scale (see
    ``quantization_noise``): DoReFa maps weights into [-1, 1] whatever their
    scale, which the BatchNorm after a layer absorbs in a deployed model, so
    the sensitivity metrics compare ``w`` with ``a Q_b(w)``, not with ``Q_b(w)``.
    Quantizers with learned state are first initialised from ``w``.

    Example:
        >>> w = torch.tensor([0.2, -0.1, 0.05, -0.3])
        >>> [round(v, 4) for v in quantized_at_scale(w, 1).tolist()]
        [0.1625, -0.1625, 0.1625, -0.1625]
    """
    bits = check_bits(bits, "bits", allow_float=False)
    with torch.no_grad():
        w = w.detach()
        q = weight_quantizer(weight_mode)(bits).to(w.device)
        q.init_from(w)
        wq = q(w).to(w.dtype)
        denom = (wq * wq).sum()
        a = (w * wq).sum() / denom if float(denom) > 0 else denom.new_zeros(())
    return a * wq


def sqnr_db(w: torch.Tensor, wq: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB after the best scale (see ``quantization_noise``).

    Example:
        >>> sqnr_db(torch.tensor([1.0, -1.0]), torch.tensor([0.5, -0.5]))
        inf
    """
    return quantization_noise(w, wq)["sqnr_db"]


def quantization_error(model: nn.Module, schedule: BitSchedule | str) -> pd.DataFrame:
    """Weight quantization error of each layer under ``schedule``.

    Columns: ``layer``, ``depth``, ``w_bits``, ``sqnr_db`` (see ``sqnr_db``),
    ``mse`` (after the same scale). Layers at 32 bits have infinite SQNR.
    """
    if isinstance(schedule, str):
        schedule = BitSchedule.from_string(schedule, model)
    check_schedule(model, schedule)
    rows = []
    for depth, name in enumerate(quantizable_layers(model)):
        spec = schedule.get(name, BitSpec())
        w = float_weight(model, name)
        with torch.no_grad():
            wq = w if spec.w_bits == FULL_PRECISION else weight_quantizer(spec.weight_mode)(spec.w_bits)(w.float())
        noise = quantization_noise(w, wq)
        rows.append({"layer": name, "depth": depth, "w_bits": spec.w_bits, "sqnr_db": noise["sqnr_db"],
                     "mse": noise["mse"]})
    return pd.DataFrame(rows)


def layer_sensitivity(model: nn.Module, data, bits: int = 2, a_bits: int | None = None,
                      layers: Sequence[str] | None = None, recalibrate: bool = True,
                      n_calibration: int = 512, weight_mode: str = "dorefa", split: str = "test",
                      output=None, device=None, act_mode: str = "dorefa") -> pd.DataFrame:
    """Accuracy when only one layer is quantized to ``bits`` (no retraining).

    For each layer, a copy of ``model`` gets that layer alone at ``bits``
    (and ``a_bits`` on its input, where it can be quantized; ``bits=32`` with
    ``a_bits`` below 32 quantizes the input alone); BatchNorm
    statistics are re-estimated on ``n_calibration`` training samples when
    ``recalibrate`` (the float baseline gets the same treatment). ``data`` is
    any form ``as_data`` accepts; accuracy is measured on ``split``, on
    ``device`` (default: where the model is).
    Columns: ``layer``, ``depth``, ``w_bits``, ``accuracy``,
    ``float_accuracy`` (the baseline's, the same in every row) and
    ``accuracy_drop`` (``float_accuracy - accuracy``).
    """
    bits = check_bits(bits, "bits")
    if bits == FULL_PRECISION and check_bits(a_bits, "a_bits") == FULL_PRECISION:
        raise ValueError("bits must be below 32 for a sensitivity analysis (32 is the float baseline), or a_bits "
                         "below 32 to quantize inputs alone")
    data = as_data(data)
    order = quantizable_layers(model)
    layers = order if layers is None else [n for n in order if n in set(layers)]

    def score(m):
        if recalibrate:
            calibrate(m, data, n_samples=n_calibration, device=device)
        return evaluate(m, data, split=split, output=output, device=device)["accuracy"]

    base = score(copy.deepcopy(model))
    rows = []
    for name in layers:
        q = quantize(model, BitSchedule({name: BitSpec(bits, a_bits, weight_mode, act_mode)}))
        acc = score(q)
        rows.append({"layer": name, "depth": order.index(name), "w_bits": bits, "accuracy": acc,
                     "float_accuracy": base, "accuracy_drop": base - acc})
    return pd.DataFrame(rows, columns=["layer", "depth", "w_bits", "accuracy", "float_accuracy", "accuracy_drop"])
