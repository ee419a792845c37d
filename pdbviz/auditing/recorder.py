"""The dispatch-level recorder behind ``pdbviz.audit``: what each weight's data really met.

How an operand is traced back to its weight. Every floating-point parameter
and buffer of the model is a *source*. Under a ``TorchDispatchMode`` every
aten operation is seen after autograd has decomposed it, so views,
transposes, casts and the quantizer's own arithmetic are individual ops. A
tensor is *derived* from a set of sources when it is a source's storage (any
view of it, including a ``.data`` alias), or the output of an op whose
tensor inputs are all derived (0-d and one-element tensors count as
constants). Derived tensors are tracked by their byte range in their storage
and kept alive during the pass, so no address is reused. A *use* is an op
where a derived operand meets data: any other tensor with more than one
element (an activation, token indices, a tensor created during the forward).
The derived operand's distinct values at that op are what the computation
used; nothing of pdbviz's bookkeeping is read to count them. Only
floating-point parameters and buffers are sources: integer buffers (position
ids) are indices, and data, unless computed from a weight (a sign mask).

A value that pdbviz computed before the pass (the eval-mode cache of a
quantized weight, the values a packed file pinned) has no op in the pass;
it is identified by its storage (the caches are registered as derived from
their weight before running), and its values are counted like any other.
A floating-point tensor that an op reads and that is neither a source nor
produced during the pass nor an input (a tensor held in a plain attribute,
computed before the pass) becomes a source of its own, with a negative id;
where it meets data it is an *untraced operand*.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ..quant.forward_trace import storage_range

#: aten op names (their packet's name) that multiply a weight by data
WEIGHT_OPS = ("mm", "addmm", "bmm", "baddbmm", "addbmm", "mv", "addmv", "dot", "matmul", "linear",
              "_addmm_activation", "convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
              "conv_transpose2d", "conv_transpose3d", "mkldnn_convolution", "embedding", "embedding_bag",
              "_embedding_bag", "_embedding_bag_forward_only", "lstm", "gru", "rnn_tanh", "rnn_relu",
              "_transformer_encoder_layer_fwd", "_native_multi_head_attention", "_trilinear", "bilinear", "einsum")


@dataclass
class Use:
    """What one source's derived data met at one op (aggregated over calls)."""

    op: str
    calls: int = 0
    values: int = 0  # largest number of distinct values of the derived operand
    input_values: int = 0  # largest number of distinct values of the floating data operands met
    shapes: set = field(default_factory=set)


#: the integer type of the same width as each floating type: its bit patterns are counted (an integer sort is
#: several times faster than a floating one)
_BITS_OF = {torch.float32: torch.int32, torch.float64: torch.int64}


def _count_sorted(flat: torch.Tensor) -> int:
    """Distinct values of a 1-d integer tensor: sorted, then the places where neighbours differ are counted.

    On the CPU NumPy's sort is used (several times faster than ``torch.unique`` there); elsewhere ``torch.unique``.
    """
    if flat.numel() == 0:
        return 0
    if flat.device.type != "cpu":
        return int(torch.unique(flat).numel())
    s = np.sort(flat.numpy())
    return 1 + int(np.count_nonzero(s[1:] != s[:-1]))


def distinct(t: torch.Tensor) -> int:
    """Number of distinct values of ``t`` (NaN counted once, -0.0 equal to 0.0).

    Example:
        >>> distinct(torch.tensor([0.0, -0.0, 1.5, float("nan"), float("nan"), 1.5]))
        3
    """
    flat = t.detach().reshape(-1)
    if not flat.is_floating_point():
        return _count_sorted(flat.contiguous())
    if flat.dtype not in _BITS_OF:
        flat = flat.float()  # exact for half and bfloat16
    flat = flat + 0.0  # -0.0 + 0.0 is 0.0: one bit pattern per value (and a copy the view may reinterpret)
    nan = torch.isnan(flat)
    has_nan = bool(nan.any())
    if has_nan:
        flat = flat[~nan]  # NaNs differ in their payloads: counted once, apart
    return _count_sorted(flat.view(_BITS_OF[flat.dtype])) + int(has_nan)


def _tensors(obj) -> list[torch.Tensor]:
    """The tensors in an op's arguments or outputs (tuples, lists and dicts walked; a faster ``tree_leaves``)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        found = []
        for item in obj:
            if isinstance(item, torch.Tensor):
                found.append(item)
            elif isinstance(item, (tuple, list, dict)):
                found.extend(_tensors(item))
        return found
    if isinstance(obj, dict):
        return _tensors(list(obj.values()))
    return [leaf for leaf in tree_leaves(obj) if isinstance(leaf, torch.Tensor)]


class Recorder(TorchDispatchMode):
    """Records, per source, every op where its derived data met other data (see the module docstring).

    Args:
        sources: source id -> the stored tensors of that source.
        count_inputs: source ids whose uses should also count the distinct values of the data they meet.
    """

    def __init__(self, sources: dict[int, tuple[torch.Tensor, ...]], count_inputs: set[int] | None = None):
        super().__init__()
        self.ranges: dict[int, list[tuple[int, int, frozenset]]] = {}
        self.keep: list[torch.Tensor] = []
        self.seen: dict[int, weakref.ref] = {}  # tensors produced during the pass, or given as inputs
        self.uses: dict[tuple[int, str], Use] = {}
        self.untraced: dict[int, tuple[int, ...]] = {}  # source id (negative) -> shape of an untraced tensor
        self.count_inputs = count_inputs or set()
        self._distinct: dict[tuple, int] = {}
        for sid, tensors in sources.items():
            for t in tensors:
                self.track(t, frozenset((sid,)))

    def mark_seen(self, t) -> None:
        for leaf in _tensors(t):
            self.seen[id(leaf)] = weakref.ref(leaf)

    def was_seen(self, t: torch.Tensor) -> bool:
        ref = self.seen.get(id(t))
        return ref is not None and ref() is t

    def track(self, t: torch.Tensor, sids: frozenset) -> None:
        key = storage_range(t)
        if key is None:
            return
        ptr, start, end = key
        self.ranges.setdefault(ptr, []).append((start, end, sids))
        self.keep.append(t)

    def sources_of(self, t: torch.Tensor) -> frozenset | None:
        key = storage_range(t)
        if key is None or key[0] not in self.ranges:
            return None
        _, start, end = key
        found = frozenset()
        for s, e, sids in self.ranges[key[0]]:
            if start < e and s < end:
                found |= sids
        return found or None

    def _count(self, t: torch.Tensor) -> int:
        key = (storage_range(t), tuple(t.shape), tuple(t.stride()), t._version, t.dtype)
        if key not in self._distinct:
            self._distinct[key] = distinct(t)
        return self._distinct[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        leaves = _tensors(args)
        if kwargs:
            leaves += _tensors(kwargs)
        derived: list[tuple[torch.Tensor, frozenset]] = []
        data: list[torch.Tensor] = []
        for t in leaves:
            sids = self.sources_of(t)
            if sids is None and t.is_floating_point() and t.numel() > 1 and not self.was_seen(t):
                sids = frozenset((-1 - len(self.untraced),))  # from nowhere in the pass: a source of its own
                self.untraced[next(iter(sids))] = tuple(t.shape)
                self.track(t, sids)
            if sids is not None:
                derived.append((t, sids))
            elif t.numel() > 1:
                data.append(t)
        outs = _tensors(out)
        if derived and not data:
            sids = frozenset().union(*(s for _, s in derived))
            for o in outs:
                self.track(o, sids)
        elif derived and outs:
            self._record(func._overloadpacket.__name__, derived, data)  # a comparison returning a Python value
        for o in outs:  # computes nothing
            self.seen[id(o)] = weakref.ref(o)
        return out

    def _record(self, name: str, derived, data) -> None:
        inputs = None
        for t, sids in derived:
            values = self._count(t)
            for sid in sids:
                use = self.uses.setdefault((sid, name), Use(name))
                use.calls += 1
                use.values = max(use.values, values)
                use.shapes.add(tuple(t.shape))
                if sid in self.count_inputs:
                    if inputs is None:
                        floats = [d for d in data if d.is_floating_point()]
                        inputs = max((self._count(d) for d in floats), default=0)
                    use.input_values = max(use.input_values, inputs)
