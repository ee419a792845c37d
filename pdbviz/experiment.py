"""Experiments that combine quantization, training and analysis."""

from __future__ import annotations

from torch import nn

from .quant import quantize
from .train import fit


def finetune(float_model: nn.Module, schedule, data, epochs: int = 3, lr: float = 1e-3, **fit_kwargs):
    """The fast path: quantize a trained float model and fine-tune it.

    Returns ``(quantized_model, history)``; ``float_model`` is not changed.

    Example:
        >>> from pdbviz import load_dataset, build_model
        >>> d = load_dataset("digits"); m = build_model("lenet", d.input_shape, 10)
        >>> q, h = finetune(m, "8-4-2-1", d, epochs=1, progress=False)
        >>> len(h)
        1
    """
    q = quantize(float_model, schedule)
    return q, fit(q, data, epochs=epochs, lr=lr, **fit_kwargs)
