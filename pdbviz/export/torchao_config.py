"""A schedule as a torchao ``FqnToConfig``: integer weight-only configs per layer, at the schedule's bit-widths.

torchao (``torchao.quantize_``) holds a weight as integer codes per output
channel with a scale and an integer zero-point (``IntxWeightOnlyConfig``).
Where pdbviz's grid is such a grid (symmetric weights, k >= 2; LSQ), the
config uses ``SYMMETRIC_NO_CLIPPING_ERR`` and ``TorchaoExport.apply`` puts
pdbviz's own codes and step into torchao's tensors, so the served model
computes pdbviz's outputs. Where it is not (DoReFa's 2^k levels have no zero;
1-bit weights are +-scale, while torchao's int1 grid holds 0), torchao
re-quantizes the layer with its own grid: ``notes`` says so, and the result
must be measured (``verify.agreement``), never assumed. Also in ``notes``:
weights of layers other than ``Linear`` (they stay float) and quantized
inputs (weight-only configs leave inputs float); ``strict=True`` raises
instead.
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
from ..quant.convert import float_weight
from ._trace import check_quantized
from .grid import ExportError, IntegerGrid, require, weight_grid


@dataclass(frozen=True)
class TorchaoExport:
    """A torchao ``FqnToConfig`` for a pdbviz schedule, and what it could not express.

    Attributes:
        config: the ``torchao.quantization.FqnToConfig``.
        layers: module name -> torchao weight dtype (``"int4"``...), in forward order.
        notes: weight name -> why torchao does not express it as pdbviz does.
        exact: module name -> (codes, step) of the layers whose grid torchao holds exactly.

    Example:
        >>> import pdbviz
        >>> q = pdbviz.quantize(pdbviz.build_model("mlp", (1, 8, 8)), "8-4-2")
        >>> torchao_config(q).layers  # doctest: +SKIP
        {'fc1': 'int8', 'fc2': 'int4', 'fc3': 'int2'}
    """

    config: Any
    layers: dict[str, str]
    notes: dict[str, str] = field(default_factory=dict)
    exact: dict[str, tuple] = field(default_factory=dict, repr=False)

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
        for path, (codes, step) in self.exact.items():  # pdbviz's codes and step, not torchao's choice
            module = new.get_submodule(path)
            held = module.weight
            rows = codes.shape[0]
            values = torch.as_tensor(codes, dtype=torch.float32) * step
            weight = type(held).from_hp(values, tuple(held.block_size), held.target_dtype,
                                        intx_choose_qparams_algorithm=None,
                                        custom_scale=torch.full((rows, 1), step, dtype=torch.float32),
                                        custom_zero_point=torch.zeros((rows, 1), dtype=torch.int8))
            module.weight = nn.Parameter(weight, requires_grad=False)
        return new.eval()


def torchao_config(model: nn.Module, strict: bool = False) -> TorchaoExport:
    """The schedule of a pdbviz-quantized ``model`` as a torchao ``FqnToConfig``.

    Each quantized ``Linear`` weight gets ``IntxWeightOnlyConfig`` at its
    bit-width, per output channel: ``SYMMETRIC_NO_CLIPPING_ERR`` where
    torchao holds pdbviz's grid (symmetric k >= 2, LSQ; ``apply`` then sets
    pdbviz's codes and step exactly), ``ASYMMETRIC`` where it cannot
    (DoReFa, 1 bit: torchao re-quantizes). What torchao does not express as
    pdbviz does is listed in ``notes`` and warned about; with
    ``strict=True`` it raises ExportError instead.

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
    configs, layers, notes, exact = {}, {}, {}, {}
    for entry in discover(model).entries:
        path, pname = entry.owners[0]
        wq = weight_quant(modules[path], pname)
        if wq is None:
            continue
        spec, problems = wq.spec, []
        linear = all(isinstance(modules[p], nn.Linear) for p, _ in entry.owners)
        q = wq.weight_quantizer
        if q is not None and not linear:
            problems.append(f"a {entry.kind} weight: pdbviz writes torchao configs for Linear weights only, "
                            "so it stays float")
        grid = None
        if q is not None and linear:
            with torch.no_grad():
                values = getattr(modules[path], pname).detach().float().cpu()
                grid = weight_grid(q, values, float_weight(model, entry.name).float().cpu())
        held = grid is not None and _holds(grid)
        if grid is not None and not held:
            why = "1 bit: +-scale, while torchao's int1 grid holds 0 and one value" if grid.bipolar else \
                f"{spec.weight_mode}'s {2 ** grid.bits} levels have no zero, which torchao's integer zero-points " \
                "cannot hold"
            problems.append(f"{why}; torchao re-quantizes it with its own grid (int{max(2, spec.w_bits)}, per "
                            "output channel): measure the agreement")
        if wq.input_quantizer is not None:
            problems.append(f"its input at {spec.a_bits} bits stays float (weight-only config)")
        if problems:
            notes[entry.name] = "; ".join(problems)
        if grid is None:
            continue
        bits = max(2, spec.w_bits)
        mapping = MappingType.SYMMETRIC_NO_CLIPPING_ERR if held else MappingType.ASYMMETRIC
        for p, _ in entry.owners:
            configs[p] = IntxWeightOnlyConfig(weight_dtype=getattr(torch, f"int{bits}"), granularity=PerAxis(0),
                                              mapping_type=mapping)
            layers[p] = f"int{bits}"
            if held:
                exact[p] = (grid.codes(values), grid.scale)
    if notes and strict:
        raise ExportError("torchao cannot express: " + "; ".join(f"{k} ({v})" for k, v in notes.items()))
    if notes:
        warnings.warn("torchao config: " + "; ".join(f"{k}: {v}" for k, v in notes.items()), stacklevel=2)
    if not configs:
        raise ExportError(f"torchao can express none of {type(model).__name__}'s quantized weights: "
                          + "; ".join(f"{k} ({v})" for k, v in notes.items()))
    return TorchaoExport(FqnToConfig(configs), layers, notes, exact)


def _holds(grid: IntegerGrid) -> bool:
    """True when torchao's signed int-k grid with zero-point 0 holds ``grid`` (a step and integer codes)."""
    lo, hi = grid.int_range
    return not grid.bipolar and grid.zero_point == 0 and grid.signed and lo >= -(2 ** (grid.bits - 1)) \
        and hi <= 2 ** (grid.bits - 1) - 1
