"""Which layers of a model can be quantized, and in what order the forward pass uses them."""

from __future__ import annotations

import warnings

import torch
from torch import nn

#: module types whose weights pdbviz quantizes
QUANTIZABLE = (nn.Conv2d, nn.Linear)


def registered_layers(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if name and isinstance(m, QUANTIZABLE)]


def _order_by_hooks(model: nn.Module, example_input: torch.Tensor, names: list[str]) -> list[str]:
    order: list[str] = []
    modules = dict(model.named_modules())
    handles = []
    for name in names:
        def hook(_m, _inp, _out, name=name):
            if name not in order:
                order.append(name)
        handles.append(modules[name].register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return order + [n for n in names if n not in order]


def _order_by_fx(model: nn.Module, names: list[str]) -> list[str] | None:
    try:
        import torch.fx

        class _Tracer(torch.fx.Tracer):
            def is_leaf_module(self, m, qualname):
                return isinstance(m, QUANTIZABLE) or super().is_leaf_module(m, qualname)

        graph = _Tracer().trace(model)
    except Exception:  # noqa: BLE001 - any tracing failure means "use another way"
        return None
    wanted, order = set(names), []
    for node in graph.nodes:
        if node.op == "call_module" and node.target in wanted and node.target not in order:
            order.append(node.target)
    return order + [n for n in names if n not in order]


def quantizable_layers(model: nn.Module, example_input: torch.Tensor | None = None) -> list[str]:
    """Fully-qualified names of the model's Conv2d and Linear layers, in forward order.

    The order is the order in which the forward pass calls them, found by
    running ``example_input`` (or a zero tensor of ``model.input_shape`` when
    the model has that attribute, as pdbviz models do) through the model with
    hooks, else by symbolic tracing (``torch.fx``), else registration order
    with a warning.

    Example:
        >>> quantizable_layers(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
        ['0', '2']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    names = registered_layers(model)
    if not names:
        return []
    if example_input is None and getattr(model, "input_shape", None) is not None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else "cpu"
        example_input = torch.zeros((1, *model.input_shape), device=device)
    if example_input is not None:
        return _order_by_hooks(model, example_input, names)
    order = _order_by_fx(model, names)
    if order is not None:
        return order
    warnings.warn(
        f"could not trace {type(model).__name__} to find its forward order; using registration order. "
        "Pass example_input= to quantizable_layers to get the forward order.",
        stacklevel=2,
    )
    return names
