"""The example forward pass (and, without one, a symbolic trace) that orders a model's weights by first use.

Used by ``discovery``: one forward pass in eval mode under a
``TorchDispatchMode`` attributes every op that touches a weight's storage (or a
tensor computed from weights alone) to that weight, counting its
multiply-accumulates with torch's FLOP formulas and noting whether it ran
inside its owner's forward ("module") or elsewhere ("functional").
"""

from __future__ import annotations

import math
import threading

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

_RNN_OPS = ("rnn", "lstm", "gru")  # fused recurrent kernels: no FLOP formula in torch


def join_name(path: str, pname: str) -> str:
    """``path.pname``, or ``pname`` for the root module."""
    return f"{path}.{pname}" if path else pname

class _Storages:
    """Byte ranges of tracked tensors by storage, so that views of one buffer are told apart."""

    def __init__(self):
        self.by_ptr: dict[int, list[tuple[int, int, int]]] = {}

    def add(self, t: torch.Tensor, entry: int) -> bool:
        key = storage_range(t)
        if key is None:
            return False
        ptr, start, end = key
        self.by_ptr.setdefault(ptr, []).append((start, end, entry))
        return True

    def find(self, t: torch.Tensor) -> int | None:
        key = storage_range(t)
        if key is None or key[0] not in self.by_ptr:
            return None
        _, start, end = key
        for s, e, entry in self.by_ptr[key[0]]:
            if start < e and s < end:
                return entry
        return None


def storage_range(t: torch.Tensor) -> tuple[int, int, int] | None:
    """``(storage pointer, first byte, last byte + 1)`` of ``t``, or None for tensors without storage."""
    try:
        ptr = t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError, TypeError):
        return None
    if not ptr or t.numel() == 0:
        return None
    size = t.element_size()
    start = t.storage_offset() * size
    extent = (sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride())) + 1) * size
    return ptr, start, start + extent


class _UseTracker(TorchDispatchMode):
    """Sees every op; attributes ops on weight storages (and on tensors computed only from weights) to entries."""

    def __init__(self, storages: _Storages, active: dict[int, int], owner_ids: dict[int, set[int]]):
        super().__init__()
        self.storages = storages
        self.active, self.owner_ids = active, owner_ids
        self.order: list[int] = []
        self.macs: dict[int, float] = {}
        self.functional: set[int] = set()
        self.keep: list[torch.Tensor] = []  # keeps tracked tensors alive so no address is reused

    def track(self, t: torch.Tensor, entry: int) -> None:
        if isinstance(t, torch.Tensor) and self.storages.add(t, entry):
            self.keep.append(t)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tensors = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
        hits: dict[int, torch.Tensor] = {}
        for t in tensors:
            e = self.storages.find(t)
            if e is not None:
                hits.setdefault(e, t)
        if not hits:
            return out
        for e in hits:
            if e not in self.macs:
                self.order.append(e)
                self.macs[e] = 0.0
            if not any(self.active.get(i, 0) for i in self.owner_ids[e]):
                self.functional.add(e)
        from torch.utils.flop_counter import flop_registry

        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            share = formula(*args, **kwargs, out_val=out) / 2 / len(hits)
            for e in hits:
                self.macs[e] += share
        elif any(r in func._overloadpacket.__name__.lower() for r in _RNN_OPS):
            rows = math.prod(tensors[0].shape[:2]) if tensors and tensors[0].dim() >= 2 else 1
            for e, t in hits.items():  # each weight multiplies every (time step, sample) row
                self.macs[e] += rows * t.numel()
        elif all(self.storages.find(t) is not None or t.numel() <= 1 for t in tensors):
            for o in tree_leaves(out):  # computed from weights alone (a standardised weight, a cast): same entry
                if isinstance(o, torch.Tensor) and o.dim() > 0:
                    self.track(o, next(iter(hits)))
        return out


def _batch_size(example) -> int:
    leaves = [t for t in tree_leaves(example) if isinstance(t, torch.Tensor) and t.dim() > 0]
    return int(leaves[0].shape[0]) if leaves else 1


def call_with(model, example):
    """Run ``model`` on an example input: a tensor, a tuple of positional arguments or a dict of keyword ones."""
    if isinstance(example, dict):
        return model(**example)
    if isinstance(example, tuple):
        return model(*example)
    return model(example)


_DISCOVERY = threading.local()


def discovering() -> bool:
    """True inside the example forward pass of ``discover`` (quantizers skip their caches there)."""
    return getattr(_DISCOVERY, "on", False)


def trace_forward(model: nn.Module, example, groups: list[dict]):
    storages, owner_ids = _Storages(), {}
    for e, g in enumerate(groups):
        owner_ids[e] = {id(m) for m, _, _ in g["modules"]}
        for t in g["originals"]:
            storages.add(t, e)
    active: dict[int, int] = {}
    tracker = _UseTracker(storages, active, owner_ids)
    handles = []
    for module in model.modules():
        def enter(m, *args):
            active[id(m)] = active.get(id(m), 0) + 1

        def leave(m, *args):
            active[id(m)] -= 1

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave, always_call=True))
    for e, g in enumerate(groups):
        for module, pname in ((m, p) for (m, _, _), (_, p) in zip(g["modules"], g["owners"])):
            if parametrize.is_parametrized(module, pname):
                handles.append(module.parametrizations[pname].register_forward_hook(
                    lambda _m, _a, out, e=e: tracker.track(out, e)))
    was_training = model.training
    fastpath = torch.backends.mha.get_fastpath_enabled()
    _DISCOVERY.on = True
    try:
        model.eval()
        torch.backends.mha.set_fastpath_enabled(False)  # the fused attention kernels have no FLOP formula
        with torch.no_grad(), tracker:
            call_with(model, example)
    finally:
        _DISCOVERY.on = False
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for h in handles:
            h.remove()
        model.train(was_training)
    batch = _batch_size(example)
    return tracker.order, {e: m / batch for e, m in tracker.macs.items()}, tracker.functional


def trace_fx(model: nn.Module, groups: list[dict]):
    """Order of first use from a symbolic trace; None when the model cannot be traced."""
    try:
        import torch.fx

        leaf_types = tuple({type(m) for g in groups for m, k, _ in g["modules"] if k is not None})

        class _Tracer(torch.fx.Tracer):
            def is_leaf_module(self, m, qualname):
                return isinstance(m, leaf_types) or super().is_leaf_module(m, qualname)

        graph = _Tracer().trace(model)
    except Exception:  # noqa: BLE001 - any tracing failure means "use another way"
        return None
    by_module, by_param = {}, {}
    for e, g in enumerate(groups):
        for path, pname in g["owners"]:
            by_module.setdefault(path, []).append(e)
            by_param[join_name(path, pname)] = e
    order, functional = [], set()

    def see(e, func):
        if e not in order:
            order.append(e)
        if func:
            functional.add(e)

    for node in graph.nodes:
        if node.op == "call_module":
            for e in by_module.get(node.target, []):
                see(e, False)
            if isinstance(model.get_submodule(node.target), nn.MultiheadAttention):
                e = by_param.get(join_name(node.target, "out_proj.weight"))
                if e is not None:
                    see(e, True)  # the attention multiplies its out_proj weight itself
        elif node.op == "get_attr" and node.target in by_param:
            see(by_param[node.target], True)
    return order, functional
