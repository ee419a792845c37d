"""A schedule as a torchao ``FqnToConfig``: integer weight-only configs per layer, at the schedule's bit-widths.

torchao (``torchao.quantize_``) quantizes a float model for serving with its
own affine quantizer, per output channel (``IntxWeightOnlyConfig``,
``PerAxis(0)``), with integer zero-points: applied to pdbviz's quantized
values it moves DoReFa's levels (which have no zero) by half a step and
rescales the symmetric ones, so the result is *not* pdbviz's model, only the
same bit-widths. Measure the
agreement (``verify.agreement``) instead of assuming it. What torchao cannot
express is listed in ``TorchaoExport.notes`` (and raised with ``strict=True``):
weights of layers other than ``Linear`` (they stay float), 1-bit weights
(torchao's int1 grid holds 0 and one value per channel, not +-scale: they are
written as int2) and quantized inputs (weight-only configs leave inputs float).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..quant.convert import dequantize
from ..quant.discovery import discover
from ..quant.layers import weight_quant
from ._trace import check_quantized
from .grid import ExportError, require

#: torchao mapping type per weight mode (others: SYMMETRIC)
MAPPING = {"dorefa": "ASYMMETRIC", "symmetric": "SYMMETRIC"}


@dataclass(frozen=True)
class TorchaoExport:
    """A torchao ``FqnToConfig`` for a pdbviz schedule, and what it could not express.

    Attributes:
        config: the ``torchao.quantization.FqnToConfig``.
        layers: module name -> torchao weight dtype (``"int4"``...), in forward order.
        notes: weight name -> why torchao does not express it as pdbviz does.

    Example:
        >>> import pdbviz
        >>> q = pdbviz.quantize(pdbviz.build_model("mlp", (1, 8, 8)), "8-4-2")
        >>> torchao_config(q).layers  # doctest: +SKIP
        {'fc1': 'int8', 'fc2': 'int4', 'fc3': 'int2'}
    """

    config: Any
    layers: dict[str, str]
    notes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        """The config as JSON (``torchao.core.config.config_from_dict(json.loads(text))`` reads it back)."""
        from torchao.core.config import config_to_dict

        return json.dumps(config_to_dict(self.config), indent=1)

    def apply(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` quantized by ``torchao.quantize_`` with this config.

        A pdbviz-quantized model is first turned into the float model holding
        its quantized values (``dequantize(model, bake=True)``), which torchao
        then maps onto its own per-channel grid; ``model`` is left unchanged.
        (The latent float weights would not do: DoReFa's weights are
        normalised to [-1, 1] whatever the latent weights' scale.)
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        require("torchao")
        from torchao.quantization import quantize_

        new = dequantize(model, bake=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_(new, self.config, filter_fn=None)
        return new.eval()


def torchao_config(model: nn.Module, strict: bool = False) -> TorchaoExport:
    """The schedule of a pdbviz-quantized ``model`` as a torchao ``FqnToConfig``.

    Each quantized ``Linear`` weight gets ``IntxWeightOnlyConfig`` at its
    bit-width (per output channel; ASYMMETRIC for DoReFa's 2^k levels,
    SYMMETRIC for the symmetric mode). Layers or bit-widths torchao cannot
    express are listed in ``notes`` and warned about; with ``strict=True``
    they raise ExportError instead.

    Example:
        >>> import pdbviz
        >>> q = pdbviz.quantize(pdbviz.build_model("mlp", (1, 8, 8)), "8-4-2")
        >>> cfg = torchao_config(q)                 # doctest: +SKIP
        >>> served = cfg.apply(q)                   # torchao's int8/int4/int2 weights  # doctest: +SKIP
    """
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be True or False, got {strict!r}")
    check_quantized(model, "torchao")
    require("torchao")
    from torchao.quantization import FqnToConfig, IntxWeightOnlyConfig, MappingType
    from torchao.quantization.granularity import PerAxis

    modules = dict(model.named_modules())
    configs, layers, notes = {}, {}, {}
    for entry in discover(model).entries:
        path, pname = entry.owners[0]
        wq = weight_quant(modules[path], pname)
        if wq is None:
            continue
        spec, problems = wq.spec, []
        linear = all(isinstance(modules[p], nn.Linear) for p, _ in entry.owners)
        if wq.weight_quantizer is not None and not linear:
            problems.append(f"a {entry.kind} weight: torchao's IntxWeightOnlyConfig quantizes Linear weights only, "
                            "so it stays float")
        if spec.w_bits == 1 and linear:
            problems.append("1 bit: torchao's int1 grid holds 0 and one value per channel, not +-scale; written as "
                            "int2 (-scale, 0, +scale)")
        if wq.input_quantizer is not None:
            problems.append(f"its input at {spec.a_bits} bits stays float (weight-only config)")
        if problems:
            notes[entry.name] = "; ".join(problems)
        if wq.weight_quantizer is None or not linear:
            continue
        bits = max(2, spec.w_bits)
        mapping = getattr(MappingType, MAPPING.get(spec.weight_mode, "SYMMETRIC") if spec.w_bits > 1 else "SYMMETRIC")
        for p, _ in entry.owners:
            configs[p] = IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{bits}"), granularity=PerAxis(0),
                                              mapping_type=mapping)
            layers[p] = f"int{bits}"
    if notes and strict:
        raise ExportError("torchao cannot express: " + "; ".join(f"{k} ({v})" for k, v in notes.items()))
    if notes:
        warnings.warn("torchao config: " + "; ".join(f"{k}: {v}" for k, v in notes.items()), stacklevel=2)
    if not configs:
        raise ExportError(f"torchao can express none of {type(model).__name__}'s quantized weights: "
                          + "; ".join(f"{k} ({v})" for k, v in notes.items()))
    return TorchaoExport(FqnToConfig(configs), layers, notes)
