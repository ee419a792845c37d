"""The record of a float forward pass, and its replay: module calls that cannot depend on a changed layer answer
from the record instead of running.

``Record`` keeps every module call of one forward pass in call order (pre-order: a module before the modules it
calls): its output, where its subtree of calls ends, and whether it was *pure* (it left the tensors it was given
unchanged). A recorded output is not copied unless later code changes it in place: each tensor's version counter
(``Tensor._version``, which every in-place operation on it or on a view of it increments) is compared after the pass
(``Record.changed``), and the pass is run again copying just those outputs. Models without in-place operations on
module outputs (most) pay for no copy at all.

``Replay`` then answers a forward pass: a pure call whose whole subtree ended before the changed layer's first call
returns its recorded output without running (its children are skipped too); every other call runs. A call that
changed its arguments in place always runs, so that the change happens again. ``Replay.check`` verifies that no
recorded output handed out uncopied was changed in place in the pass; if one was (a forward pass that takes another
path than the float pass did), ``InPlaceChange`` names it, and the caller records the batch again copying it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._pytree import tree_leaves, tree_map


class InPlaceChange(Exception):
    """Recorded outputs (their indices) that a replayed pass changed in place."""

    def __init__(self, indices: set[int]):
        super().__init__(f"recorded outputs {sorted(indices)} were changed in place")
        self.indices = indices


def first_tensor(out) -> torch.Tensor:
    for leaf in tree_leaves(out):
        if isinstance(leaf, torch.Tensor):
            return leaf
    raise TypeError(f"a layer returned no tensor ({type(out).__name__})")


def detached(tree):
    return tree_map(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, tree)


def cloned(tree):
    return tree_map(lambda t: t.detach().clone() if isinstance(t, torch.Tensor) else t, tree)


def _tensors(tree) -> list[torch.Tensor]:
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


@dataclass
class Event:
    """One module call: its output, the index after its subtree, its output's versions, whether it was pure."""

    module: nn.Module
    inputs: list | None
    output: object = None
    end: int = -1
    versions: tuple = ()
    pure: bool = True


class _Patched:
    """Replaces the ``forward`` of each module by ``wrap(module, forward)`` while active (direct calls of
    ``module.forward`` are seen too, not only those through ``module(...)``)."""

    def __init__(self, modules: list[nn.Module]):
        self.modules = modules
        self._saved: dict = {}

    def __enter__(self):
        for m in self.modules:
            self._saved[m] = m.__dict__.get("forward")
            m.forward = self.wrap(m, m.forward)
        return self

    def __exit__(self, *exc) -> None:
        for m, saved in self._saved.items():
            if saved is None:
                m.__dict__.pop("forward", None)
            else:
                m.forward = saved
        self._saved.clear()

    def wrap(self, m: nn.Module, forward):
        raise NotImplementedError


class Record(_Patched):
    """While active, records every module call of one forward pass (see the module docstring); the outputs of the
    calls in ``copy`` are copied."""

    def __init__(self, modules: list[nn.Module], copy: set[int]):
        super().__init__(modules)
        self.copy = copy
        self.events: list[Event] = []

    def wrap(self, m: nn.Module, forward):
        def recorded(*args, **kwargs):
            k = len(self.events)
            e = Event(m, [(t, t._version) for t in _tensors((args, kwargs))])
            self.events.append(e)
            out = forward(*args, **kwargs)
            e.pure = all(t._version == v for t, v in e.inputs)
            e.inputs = None
            e.output = cloned(out) if k in self.copy else detached(out)
            e.versions = _versions(e.output)
            e.end = len(self.events)
            return out
        return recorded

    def changed(self) -> set[int]:
        """The calls (not copied) whose outputs were changed in place after they returned."""
        return {k for k, e in enumerate(self.events)
                if k not in self.copy and e.end >= 0 and _versions(e.output) != e.versions}


def _versions(tree) -> tuple:
    return tuple(t._version for t in _tensors(tree))


class Replay(_Patched):
    """While active, each module of the record answers from it the calls that end before ``start`` (see the module
    docstring)."""

    def __init__(self, record: Record):
        super().__init__(record.modules)
        self.record, self.start, self.i, self.handed = record, 0, 0, []

    def wrap(self, m: nn.Module, forward):
        def replayed(*args, **kwargs):
            i = self.i
            if i < self.start:
                e = self.record.events[i]
                if e.module is not m:
                    raise RuntimeError("the model called its modules in another order on the same batch; the "
                                       "network metrics need a deterministic forward pass")
                if e.pure and e.end <= self.start:
                    self.i = e.end
                    if i in self.record.copy:
                        return cloned(e.output)
                    self.handed.append(i)
                    return e.output
            self.i = i + 1
            return forward(*args, **kwargs)
        return replayed

    def reset(self, start: int) -> None:
        """The next forward pass answers from the record the calls that end before call ``start``."""
        self.start, self.i, self.handed = start, 0, []

    def check(self) -> None:
        """Raise ``InPlaceChange`` when the last pass changed in place a recorded output it was handed uncopied."""
        events = self.record.events
        bad = {i for i in self.handed if _versions(events[i].output) != events[i].versions}
        if bad:
            raise InPlaceChange(bad)
