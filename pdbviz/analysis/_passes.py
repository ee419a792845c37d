"""The passes behind the local and network sensitivity metrics: one float forward (and backward) per batch, then one
layer at a time quantized, by swapping a tensor's value rather than copying the model.

Per batch:

1. *Float pass.* The model runs once in eval mode. Hooks keep, for every target layer, its arguments and its
   output ``Y`` (first call only); when a local metric needs it, one backward pass of the summed loss gives every
   ``dL/dY`` at once. With network metrics, every module call's output is kept, in call order (``_record``).
2. *Local scores.* For each layer and bit-width, the layer alone is recomputed on its recorded arguments with the
   quantized weight (or input): ``D = Y - Y_q``. Convolutions (``groups=1``) and linear layers are linear in their
   weight, so ``D = layer(x, W - W_b)`` for every ``b`` comes from one call with the weight deltas stacked along the
   output channels. Each registered local metric turns ``(Y, D)`` into a per-batch summary.
3. *Network scores.* For each layer and bit-width the model runs again with that one change (the weight through
   ``torch.func.functional_call``, the input through a pre-hook). A module call that ended before the changed
   layer's first call cannot depend on it, so it returns its recorded output without running (a whole residual
   block at once): only the rest of the network is recomputed. Each registered network metric turns the float
   and the quantized logits into a per-batch summary.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from ..inference import loss_sum, select_output
from ._record import InPlaceChange, Record, Replay, detached, first_tensor
from .features import _reduce
from .registry import LocalBatch, Metric, NetworkBatch

Key = tuple[str, str, int]  # (layer, "weight" | "input", bits)


@dataclass(frozen=True)
class Target:
    """A layer whose weight (a plain parameter of its module) and input a hook can see."""

    name: str
    path: str
    pname: str
    module: nn.Module
    slots: tuple
    depth: int


@dataclass
class Plan:
    """What to compute: per layer, the quantized weights ``[(bits, W_b)]`` and input quantizers ``[(bits, q)]``, and
    the registered local and network metrics to score them by."""

    targets: list[Target]
    weights: dict[str, list[tuple[int, torch.Tensor]]]
    inputs: dict[str, list[tuple[int, Callable]]]
    local: list[Metric] = field(default_factory=list)
    network: list[Metric] = field(default_factory=list)
    batch_size: int = 128
    output: object = None
    max_dim: int = 512
    seed: int = 0
    loss: object = None

    @property
    def needs_grad(self) -> bool:
        return any(m.needs_grad for m in self.local)

    def changes(self, name: str) -> list[tuple[str, int, object]]:
        return [("weight", b, w) for b, w in self.weights.get(name, [])] + \
               [("input", b, q) for b, q in self.inputs.get(name, [])]


@dataclass
class Results:
    """Per ``(metric, key)`` the per-batch summaries, and the number of samples; ``value`` finishes a metric."""

    n: int = 0
    summaries: dict = field(default_factory=lambda: defaultdict(list))

    def value(self, metric: Metric, key: Key) -> float:
        return metric.value(self.summaries[(metric.name, key)], self.n)


def quantize_slots(args: tuple, kwargs: dict, slots: Iterable, q: Callable) -> tuple[tuple, dict]:
    """``args``/``kwargs`` with the floating-point tensors at ``slots`` (``(position, keyword)`` pairs) through ``q``
    (a tensor passed in several slots is quantized once)."""
    args, kwargs, done = list(args), dict(kwargs), {}

    def quant(x):
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            return x
        if id(x) not in done:
            done[id(x)] = q(x)
        return done[id(x)]

    for pos, key in slots:
        if pos < len(args):
            args[pos] = quant(args[pos])
        elif key in kwargs:
            kwargs[key] = quant(kwargs[key])
    return tuple(args), kwargs


def _weight_deltas(t: Target, args: tuple, kwargs: dict, Y: torch.Tensor, weights: list[torch.Tensor]
                   ) -> list[torch.Tensor]:
    """``Y - Y_q`` for each quantized weight: one stacked call for plain convolutions and linear layers."""
    m = t.module
    x = args[0] if args else kwargs.get("input")
    W = getattr(m, t.pname)
    plain = not kwargs and len(args) == 1 and t.pname == "weight"
    if plain and type(m) in (nn.Conv1d, nn.Conv2d, nn.Conv3d) and m.groups == 1:
        stacked = torch.cat([W - w for w in weights])
        return list(m._conv_forward(x, stacked, None).chunk(len(weights), dim=1))
    if plain and type(m) is nn.Linear:
        stacked = torch.cat([W - w for w in weights])
        return list(F.linear(x, stacked).chunk(len(weights), dim=-1))
    return [Y - first_tensor(torch.func.functional_call(m, {t.pname: w}, args, kwargs)) for w in weights]


class _Calls:
    """Hooks of the float pass on the target layers: each one's first call (arguments, output) and where it starts
    among the recorded module calls."""

    def __init__(self, targets: list[Target], record: Record | None):
        self.calls: dict[str, tuple] = {}
        self.starts: dict[str, int] = {}
        self.handles = []
        for t in targets:
            self.handles.append(t.module.register_forward_pre_hook(self._pre(t.name, record), with_kwargs=True))
            self.handles.append(t.module.register_forward_hook(self._post(t.name), with_kwargs=True))

    def _pre(self, name, record):
        def hook(_m, _args, _kwargs):
            self.starts.setdefault(name, len(record.events) if record is not None else 0)
        return hook

    def _post(self, name):
        def hook(_m, args, kwargs, out):
            if name not in self.calls:
                self.calls[name] = (args, kwargs, first_tensor(out))
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def run_passes(model: nn.Module, X: torch.Tensor, y: torch.Tensor, plan: Plan, device) -> Results:
    """Run the float pass, the local scores and the network scores over ``(X, y)`` in batches (see the module
    docstring); ``model`` must be in eval mode on ``device``."""
    res = Results()
    modules = list(model.modules()) if plan.network else []
    copy: set[int] = set()  # module calls whose outputs later code changes in place: those are copied
    sketches: dict = {}
    for i in range(0, len(X), plan.batch_size):
        xb, yb = X[i:i + plan.batch_size].to(device), y[i:i + plan.batch_size].to(device)
        network: dict = {}
        while True:
            calls, record, z, grads = _float_pass(model, xb, yb, plan, modules, copy)
            if record is not None and record.changed():
                copy |= record.changed()
                continue
            if not plan.network:
                break
            try:
                network = _network(model, xb, yb, z, plan, calls, record)
            except InPlaceChange as change:  # a forward pass changed in place what the float pass did not
                copy |= change.indices
                continue
            break
        res.n += len(xb)
        with torch.no_grad():
            if plan.local:
                _local(plan, calls, grads, res, sketches)
        for k, v in network.items():
            res.summaries[k].append(v)
    return res


def _float_pass(model, xb, yb, plan: Plan, modules, copy):
    record = Record(modules, copy) if modules else None
    calls = _Calls(plan.targets, record)  # a target's pre-hook runs before its forward is recorded: starts are right
    try:
        with torch.set_grad_enabled(plan.needs_grad), record or contextlib.nullcontext():
            z = select_output(model(xb), plan.output)
            grads = None
            if plan.needs_grad:
                ys = [calls.calls[t.name][2] for t in plan.targets]
                grads = torch.autograd.grad(loss_sum(z, yb, plan.loss), ys, allow_unused=True)
    finally:
        calls.remove()
    return calls, record, z.detach(), grads


def _local(plan: Plan, calls: _Calls, grads, res: Results, sketches: dict) -> None:
    for j, t in enumerate(plan.targets):
        args, kwargs, Y = calls.calls[t.name]
        args, kwargs, Y = detached(args), detached(kwargs), Y.detach()
        g2 = None
        if grads is not None:
            g2 = grads[j].detach().pow(2) if grads[j] is not None else torch.zeros_like(Y)
        features = _features(t, Y, plan, sketches)
        changes = plan.weights.get(t.name, [])
        deltas = _weight_deltas(t, args, kwargs, Y, [w for _, w in changes]) if changes else []
        scored = [((t.name, "weight", b), D) for (b, _), D in zip(changes, deltas)]
        for b, q in plan.inputs.get(t.name, []):
            a2, k2 = quantize_slots(args, kwargs, t.slots, q)
            scored.append(((t.name, "input", b), Y - first_tensor(t.module(*a2, **k2))))
        for key, D in scored:
            for m in plan.local:
                batch = LocalBatch(Y, D, g2 if m.needs_grad else None, features)
                res.summaries[(m.name, key)].append(m.batch(batch))


def _features(t: Target, Y: torch.Tensor, plan: Plan, sketches: dict) -> Callable:
    """Pooled features of an output of ``t`` (those of ``Y`` computed once)."""
    channels_last = not isinstance(t.module, nn.modules.conv._ConvNd)
    cache: list = []

    def features(a: torch.Tensor) -> torch.Tensor:
        if a is Y and cache:
            return cache[0]
        out = _reduce(a.float(), "auto", plan.max_dim, channels_last, sketches, t.name, plan.seed).double().cpu()
        if a is Y:
            cache.append(out)
        return out
    return features


def _network(model, xb, yb, z, plan: Plan, calls: _Calls, record: Record) -> dict:
    """Per ``(metric, key)`` the batch's summary (computed in full before any is kept: a pass that meets an in-place
    change the float pass did not make raises ``InPlaceChange``, and the batch is run again)."""
    out: dict = {}
    z64 = z.double()
    logp = F.log_softmax(z64, 1)
    loss = lambda logits, labels: loss_sum(logits, labels, plan.loss)  # noqa: E731
    params = dict(model.named_parameters(remove_duplicate=False))
    with torch.no_grad(), Replay(record) as replay:
        for t in plan.targets:
            start = calls.starts[t.name]
            name = f"{t.path}.{t.pname}" if t.path else t.pname
            for operand, b, change in plan.changes(t.name):
                replay.reset(start)
                if operand == "weight":
                    if name not in params:
                        raise ValueError(f"layer {t.name!r}: its weight is not a parameter {name!r} of the model")
                    result = torch.func.functional_call(model, {name: change}, (xb,))
                else:
                    h = t.module.register_forward_pre_hook(
                        lambda _m, a, k, q=change, s=t.slots: quantize_slots(a, k, s, q), with_kwargs=True)
                    try:
                        result = model(xb)
                    finally:
                        h.remove()
                replay.check()
                zq = select_output(result, plan.output).double()
                batch = NetworkBatch(z, z64, logp, zq, yb, loss)
                for m in plan.network:
                    out[(m.name, (t.name, operand, b))] = m.batch(batch)
    return out

