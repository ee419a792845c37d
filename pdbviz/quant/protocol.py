"""What a model may tell pdbviz about itself: the ``pdbviz_info`` protocol.

Any ``nn.Module`` works with pdbviz. A model can carry a ``ModelInfo`` in its
attribute ``pdbviz_info`` (the zoo models of ``build_model`` do) to say:

- ``input_shape`` (and ``input_dtype``): one sample, so that pdbviz can run
  an example forward pass to find the order in which the weights are used,
  where each is used, and how many multiply-accumulates each costs, without
  being handed an ``example_input``;
- ``stages``: which stage (a residual stage, a block) each layer belongs to,
  by module-name prefix, so that ``"8-4-2-1"`` gives one value per stage;
- ``config``: the keyword arguments that rebuild the model (checkpoints use it).

Without it, stages are inferred for torchvision ResNets (``conv1``,
``layer1`` .. ``layer4``, ``fc``) and are one per layer otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    """The ``pdbviz_info`` of a model (see the module docstring).

    Attributes:
        input_shape: the shape of one sample, e.g. ``(1, 28, 28)`` or ``(30,)``.
        input_dtype: its dtype (``torch.long`` for token indices).
        stages: module-name prefix -> stage index; a layer belongs to the
            stage of its longest matching prefix.
        config: how to rebuild the model (``build_model`` keyword arguments).

    Example:
        >>> info = ModelInfo(input_shape=(1, 8, 8), stages={"conv1": 0, "block": 1})
        >>> info.stage_of("block.conv2")
        1
    """

    input_shape: tuple[int, ...] | None = None
    input_dtype: torch.dtype = torch.float32
    stages: Mapping[str, int] | None = None
    config: Mapping[str, Any] | None = field(default=None, compare=False)

    def stage_of(self, layer: str) -> int | None:
        """The stage of ``layer`` (its longest matching module-name prefix), or None."""
        if not self.stages:
            return None
        best, best_len = None, -1
        for prefix, stage in self.stages.items():
            if (layer == prefix or layer.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = stage, len(prefix)
        return best

    def example_input(self, batch: int = 1, device=None) -> torch.Tensor | None:
        """A zero batch of ``input_shape`` (None when the shape is not known)."""
        if self.input_shape is None:
            return None
        return torch.zeros((batch, *self.input_shape), dtype=self.input_dtype, device=device)


def model_info(model: nn.Module) -> ModelInfo:
    """The model's ``pdbviz_info``, or what pdbviz can infer (torchvision ResNet stages), or an empty one."""
    info = getattr(model, "pdbviz_info", None)
    if isinstance(info, ModelInfo):
        return info
    if info is not None:
        raise TypeError(f"{type(model).__name__}.pdbviz_info must be a pdbviz ModelInfo, got {type(info).__name__}")
    return ModelInfo(stages=_resnet_stages(model))


def _resnet_stages(model: nn.Module) -> dict[str, int] | None:
    """Stem, ``layer1`` .. ``layerN`` and the head of a torchvision-style ResNet, else None."""
    children = dict(model.named_children())
    layers = [n for n in children if n.startswith("layer") and n[5:].isdigit()]
    if len(layers) < 2 or "fc" not in children:
        return None
    stages = {n: i for i, n in enumerate(sorted(layers, key=lambda n: int(n[5:])), 1)}
    for stem in ("conv1", "stem"):
        if stem in children:
            stages[stem] = 0
    stages["fc"] = len(layers) + 1
    return stages


def stage_indices(model: nn.Module | None, layers: Sequence[str]) -> list[int]:
    """One stage index per layer (forward order), renumbered 0, 1, 2... in order of first appearance.

    Layers outside every declared stage get a stage of their own.
    """
    info = model_info(model) if model is not None else ModelInfo()
    ids, out = {}, []
    for i, name in enumerate(layers):
        stage = info.stage_of(name)
        key = ("stage", stage) if stage is not None else ("layer", i)
        if key not in ids:
            ids[key] = len(ids)
        out.append(ids[key])
    return out
