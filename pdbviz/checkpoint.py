"""Checkpoints of zoo models: weights, schedule and how to rebuild the model.

Saved with ``torch.save`` as a dict of tensors and plain values, loaded with
``torch.load(..., weights_only=True)``: nothing is unpickled beyond that.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch
from torch import nn

from ._checks import InstanceOf, OrNone, validate_params
from ._io import atomic_write
from .models import build_model
from .quant import BitSchedule, model_info, quantize, schedule_of

#: the ``format`` field of a checkpoint file.
CHECKPOINT_FORMAT = "pdbviz-checkpoint"
#: version of the checkpoint layout that ``save_model`` writes and ``load_model`` reads.
CHECKPOINT_VERSION = 1


_MODEL = InstanceOf(nn.Module, "a torch.nn.Module")
_PATH = InstanceOf((str, os.PathLike), "a file path (str or os.PathLike)")


@validate_params({"model": _MODEL, "path": _PATH})
def save_model(model: nn.Module, path: str | os.PathLike) -> Path:
    """Save ``model`` (weights, bit schedule, build configuration) atomically.

    Models from ``build_model`` can be rebuilt by ``load_model(path)`` alone;
    for other models pass the architecture to ``load_model(path, model=...)``.

    Example:
        >>> from pdbviz import build_model, quantize
        >>> q = quantize(build_model("lenet"), "8-4-2-1")
        >>> save_model(q, "lenet.pt")  # doctest: +SKIP
    """
    schedule = schedule_of(model)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": json.dumps(dict(model_info(model).config or {}) or None),
        "schedule": json.dumps(schedule.to_dict() if schedule is not None else None),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        torch.save(payload, fh)
    return path


@validate_params({"path": _PATH, "model": OrNone(_MODEL)})
def load_model(path: str | os.PathLike, model: nn.Module | None = None) -> nn.Module:
    """Load a checkpoint written by ``save_model``; returns the model in eval mode.

    ``model`` is needed only for models that ``build_model`` did not make; it
    gives the (float) architecture and is not changed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} is not a readable pdbviz checkpoint (truncated, corrupted or another format): "
                         f"{first}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a pdbviz checkpoint")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint version {payload.get('version')!r}; "
                         f"this pdbviz reads version {CHECKPOINT_VERSION}")
    config = json.loads(payload["config"])
    schedule = json.loads(payload["schedule"])
    if model is None:
        if config is None:
            raise ValueError(f"{path} holds a model that build_model did not make; pass its architecture: "
                             "load_model(path, model=MyNet())")
        model = build_model(config["name"], config["input_shape"], config["num_classes"], config["width"])
    if schedule is not None:
        model = quantize(model, BitSchedule.from_dict(schedule))
    else:
        import copy

        model = copy.deepcopy(model)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path} does not fit this model: {str(err).splitlines()[0]}") from None
    return model.eval()
