"""The passes behind the sensitivity metrics: one float forward (and backward) per batch, then one layer at a time
quantized, by swapping a tensor's value rather than copying the model.

Per batch:

1. *Float pass.* The model runs once in eval mode. Hooks keep, for every target layer, its arguments and its
   output ``Y`` (first call only); with the output-error score, one backward pass of the summed cross-entropy gives
   every ``dL/dY`` at once. With network metrics, the output of every leaf module is kept (cloned) in call order.
2. *Local scores.* For each layer and bit-width, the layer alone is recomputed on its recorded arguments with the
   quantized weight (or input): ``D = Y - Y_q``. Convolutions (``groups=1``) and linear layers are linear in their
   weight, so ``D = layer(x, W - W_b)`` for every ``b`` comes from one call with the weight deltas stacked along the
   output channels.
3. *Network scores.* For each layer and bit-width the model runs again with that one change (the weight through
   ``torch.func.functional_call``, the input through a pre-hook). Leaf-module calls made before the layer's first call
   cannot depend on it, so they return their recorded outputs: only the rest of the network is recomputed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils._pytree import tree_leaves, tree_map

from ..inference import loss_sum, select_output
from .features import _reduce

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
    """What to compute: per layer, the quantized weights ``[(bits, W_b)]`` and input quantizers ``[(bits, q)]``."""

    targets: list[Target]
    weights: dict[str, list[tuple[int, torch.Tensor]]]
    inputs: dict[str, list[tuple[int, Callable]]]
    output_error: bool = False
    cka: bool = False
    network: bool = False
    batch_size: int = 128
    output: object = None
    max_dim: int = 512
    seed: int = 0
    loss: object = None

    def changes(self, name: str) -> list[tuple[str, int, object]]:
        return [("weight", b, w) for b, w in self.weights.get(name, [])] + \
               [("input", b, q) for b, q in self.inputs.get(name, [])]


@dataclass
class Results:
    """Sums over the samples; ``finish`` in ``metrics`` turns them into metric values."""

    n: int = 0
    output_error: dict = field(default_factory=lambda: defaultdict(float))
    float_features: dict = field(default_factory=lambda: defaultdict(list))
    features: dict = field(default_factory=lambda: defaultdict(list))
    signal: float = 0.0
    float_correct: int = 0
    float_loss: float = 0.0
    noise: dict = field(default_factory=lambda: defaultdict(float))
    kl: dict = field(default_factory=lambda: defaultdict(float))
    correct: dict = field(default_factory=lambda: defaultdict(int))
    loss: dict = field(default_factory=lambda: defaultdict(float))


def _first_tensor(out) -> torch.Tensor:
    for leaf in tree_leaves(out):
        if isinstance(leaf, torch.Tensor):
            return leaf
    raise TypeError(f"a layer returned no tensor ({type(out).__name__})")


def _detached(tree):
    return tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, tree)


def _cloned(tree):
    return tree_map(lambda t: t.detach().clone() if isinstance(t, torch.Tensor) else t, tree)


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
    return [Y - _first_tensor(torch.func.functional_call(m, {t.pname: w}, args, kwargs)) for w in weights]


class _Recorder:
    """Hooks of the float pass: each target's first call (arguments, output, where it starts among the leaf calls)
    and, when asked, every leaf module's output in call order."""

    def __init__(self, model: nn.Module, targets: list[Target], leaves: list[nn.Module] | None):
        self.calls: dict[str, tuple] = {}
        self.starts: dict[str, int] = {}
        self.outputs: list[tuple[nn.Module, object]] = []
        self.handles = []
        for t in targets:
            self.handles.append(t.module.register_forward_pre_hook(self._pre(t.name), with_kwargs=True))
            self.handles.append(t.module.register_forward_hook(self._post(t.name), with_kwargs=True))
        for m in leaves or ():
            self.handles.append(m.register_forward_hook(lambda mod, _a, out: self.outputs.append((mod, _cloned(out)))))

    def _pre(self, name):
        def hook(_m, _args, _kwargs):
            self.starts.setdefault(name, len(self.outputs))
        return hook

    def _post(self, name):
        def hook(_m, args, kwargs, out):
            if name not in self.calls:
                self.calls[name] = (args, kwargs, _first_tensor(out))
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


class _Replay:
    """Leaf modules answer from the float pass's record until the changed layer starts, then compute."""

    def __init__(self, leaves: list[nn.Module]):
        self.leaves, self.record, self.start, self.i = leaves, [], 0, 0

    def __enter__(self):
        for m in self.leaves:
            m.forward = self._forward(m, type(m).forward)
        return self

    def __exit__(self, *exc):
        for m in self.leaves:
            m.__dict__.pop("forward", None)

    def _forward(self, m, forward):
        def replayed(*args, **kwargs):
            i, self.i = self.i, self.i + 1
            if i < self.start:
                mod, out = self.record[i]
                if mod is not m:
                    raise RuntimeError("the model called its modules in another order on the same batch; the "
                                       "network metrics need a deterministic forward pass")
                return _cloned(out)
            return forward(m, *args, **kwargs)
        return replayed

    def reset(self, start: int, record: list) -> None:
        """The next forward pass answers its first ``start`` leaf calls from ``record``."""
        self.start, self.i, self.record = start, 0, record


def run_passes(model: nn.Module, X: torch.Tensor, y: torch.Tensor, plan: Plan, device) -> Results:
    """Run the float pass, the local scores and the network scores over ``(X, y)`` in batches (see the module
    docstring); ``model`` must be in eval mode on ``device``."""
    res = Results()
    leaves = [m for m in model.modules() if not any(True for _ in m.children())] if plan.network else None
    sketches: dict = {}
    for i in range(0, len(X), plan.batch_size):
        xb, yb = X[i:i + plan.batch_size].to(device), y[i:i + plan.batch_size].to(device)
        res.n += len(xb)
        rec = _Recorder(model, plan.targets, leaves)
        try:
            with torch.set_grad_enabled(plan.output_error):
                z = select_output(model(xb), plan.output)
                grads = None
                if plan.output_error:
                    ys = [rec.calls[t.name][2] for t in plan.targets]
                    grads = torch.autograd.grad(loss_sum(z, yb, plan.loss), ys, allow_unused=True)
        finally:
            rec.remove()
        z = z.detach()
        with torch.no_grad():
            if plan.output_error or plan.cka:
                _local(plan, rec, grads, res, sketches)
            if plan.network:
                _network(model, xb, yb, z, plan, rec, leaves, res)
    return res


def _local(plan: Plan, rec: _Recorder, grads, res: Results, sketches: dict) -> None:
    for j, t in enumerate(plan.targets):
        args, kwargs, Y = rec.calls[t.name]
        args, kwargs, Y = _detached(args), _detached(kwargs), Y.detach()
        g2 = None if grads is None else (grads[j].detach().pow(2) if grads[j] is not None else torch.zeros_like(Y))
        reduce = (lambda a: _reduce(a.float(), "auto", plan.max_dim, not isinstance(t.module, nn.modules.conv._ConvNd),
                                    sketches, t.name, plan.seed).double().cpu())
        if plan.cka:
            res.float_features[t.name].append(reduce(Y))
        changes = plan.weights.get(t.name, [])
        deltas = _weight_deltas(t, args, kwargs, Y, [w for _, w in changes]) if changes else []
        for (b, _), D in zip(changes, deltas):
            _score(res, (t.name, "weight", b), Y, D, g2, reduce if plan.cka else None)
        for b, q in plan.inputs.get(t.name, []):
            a2, k2 = quantize_slots(args, kwargs, t.slots, q)
            D = Y - _first_tensor(t.module(*a2, **k2))
            _score(res, (t.name, "input", b), Y, D, g2, reduce if plan.cka else None)


def _score(res: Results, key: Key, Y, D, g2, reduce) -> None:
    if g2 is not None:
        res.output_error[key] += float((g2 * D.pow(2)).sum(dtype=torch.float64))
    if reduce is not None:
        res.features[key].append(reduce(Y - D))


def _network(model, xb, yb, z, plan: Plan, rec: _Recorder, leaves, res: Results) -> None:
    z64 = z.double()
    logp = F.log_softmax(z64, 1)
    res.signal += float(z64.pow(2).sum())
    res.float_correct += int((z.argmax(1) == yb).sum())
    res.float_loss += float(loss_sum(z64, yb, plan.loss))
    params = dict(model.named_parameters(remove_duplicate=False))
    with _Replay(leaves) as replay:
        for t in plan.targets:
            start = rec.starts[t.name]
            name = f"{t.path}.{t.pname}" if t.path else t.pname
            for operand, b, change in plan.changes(t.name):
                replay.reset(start, rec.outputs)
                if operand == "weight":
                    if name not in params:
                        raise ValueError(f"layer {t.name!r}: its weight is not a parameter {name!r} of the model")
                    out = torch.func.functional_call(model, {name: change}, (xb,))
                else:
                    h = t.module.register_forward_pre_hook(
                        lambda _m, a, k, q=change, s=t.slots: quantize_slots(a, k, s, q), with_kwargs=True)
                    try:
                        out = model(xb)
                    finally:
                        h.remove()
                zq = select_output(out, plan.output).double()
                _network_stats(res, (t.name, operand, b), z64, logp, zq, yb, plan.loss)


def _network_stats(res: Results, key: Key, z64, logp, zq, yb, loss) -> None:
    res.noise[key] += float((z64 - zq).pow(2).sum())
    res.kl[key] += float((logp.exp() * (logp - F.log_softmax(zq, 1))).sum())
    res.correct[key] += int((zq.argmax(1) == yb).sum())
    res.loss[key] += float(loss_sum(zq, yb, loss))


def features_matrix(chunks: list[torch.Tensor]) -> np.ndarray:
    return torch.cat(chunks).numpy()
