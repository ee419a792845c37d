"""Small edits of an ONNX graph, and where a weight goes in it: what both writers share.

A weight is an initializer of the float graph (``_trace``). What the graph
does with it before it meets data is its *closure* (``Transpose``, ``Slice``,
``Reshape``... of the weight alone); the nodes where a weight-derived tensor
meets data are its *frontier* (``MatMul``, ``Gemm``, ``Conv``,
``ConvTranspose``, ``Gather``, ``LSTM``...). The writers replace the
initializer itself (so every use of it follows), quantize the data operand of
each frontier node that multiplies it, and, where a weight is written as
several binary planes, stack them along one more axis (``_planes``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._version import __version__
from .grid import ExportError

#: frontier ops that multiply their weight operand with data, and the position of the data operand for a weight at 1
MAC_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class Use:
    """Where one initializer goes: its weight-only closure (in graph order) and its frontier ``(node, input index)``."""

    closure: list
    frontier: list


class Graph:
    """Constants, new nodes, the uses of a tensor, and a topological sort at the end."""

    def __init__(self, proto):
        from onnx import numpy_helper

        self.proto, self.g, self._np = proto, proto.graph, numpy_helper
        self.inits = {i.name: i for i in self.g.initializer}
        self._names = {n for node in self.g.node for n in [*node.input, *node.output]} | set(self.inits) | \
            {i.name for i in self.g.input} | {o.name for o in self.g.output}
        self.new_nodes: list = []
        for i, node in enumerate(self.g.node):  # nodes are told apart by name
            if not node.name or node.name in self._names:
                node.name = f"{node.op_type}_{i}_node"
            self._names.add(node.name)
        self.dropped: set[str] = set()  # names of original nodes to leave out
        self._static = self._static_tensors()
        self.shape("")  # shapes of the graph as traced, before any edit

    def _static_tensors(self) -> set[str]:
        """Tensors that do not depend on the graph's inputs (initializers, constants and what they compute)."""
        static = set(self.inits) | {""}
        for node in self.g.node:
            if all(i in static for i in node.input):
                static.update(node.output)
        return static

    def value(self, tensor: str) -> np.ndarray | None:
        """The value of a constant tensor (an initializer or a ``Constant`` node's output), else None."""
        if tensor in self.inits:
            return self.array(tensor)
        for n in self.g.node:
            if n.op_type == "Constant" and n.output[0] == tensor and n.attribute:
                from onnx import helper

                a = n.attribute[0]
                return np.asarray(self._np.to_array(a.t) if a.name == "value" else helper.get_attribute_value(a))
        return None

    def shape(self, tensor: str) -> tuple | None:
        """The static shape of a tensor of the original graph (None where unknown or dynamic)."""
        if not hasattr(self, "_shapes"):
            from onnx import shape_inference

            try:
                inferred = shape_inference.infer_shapes(self.proto).graph
            except Exception:  # noqa: BLE001 - no shapes: callers take another way
                inferred = self.g
            self._shapes = {}
            for vi in [*inferred.value_info, *inferred.input, *inferred.output]:
                dims = vi.type.tensor_type.shape.dim
                if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                    self._shapes[vi.name] = tuple(d.dim_value for d in dims)
            self._shapes.update({k: tuple(v.dims) for k, v in self.inits.items()})
        return self._shapes.get(tensor)

    def unique(self, hint: str) -> str:
        name, i = hint, 1
        while name in self._names:
            name, i = f"{hint}_{i}", i + 1
        self._names.add(name)
        return name

    def array(self, name: str) -> np.ndarray:
        return self._np.to_array(self.inits[name])

    def const(self, hint: str, value, dtype=np.float32) -> str:
        """A new initializer holding ``value`` as ``dtype`` (a numpy or ml_dtypes type: int4 is packed)."""
        name = self.unique(hint)
        tensor = self._np.from_array(np.asarray(value).astype(dtype), name)
        self.g.initializer.append(tensor)
        self.inits[name] = tensor
        return name

    def put(self, name: str, value) -> None:
        """Set the initializer ``name`` to the float32 ``value``."""
        if name in self.inits:
            self.drop_init(name)
        tensor = self._np.from_array(np.asarray(value, np.float32), name)
        self.g.initializer.append(tensor)
        self.inits[name] = tensor

    def drop_init(self, name: str) -> None:
        """Remove the initializer ``name``; a node must produce a tensor of that name instead."""
        tensor = self.inits.pop(name)
        self.g.initializer.remove(tensor)

    def node(self, op: str, inputs: list[str], hint: str, out: str | None = None, domain: str = "", **attrs) -> str:
        from onnx import helper

        out = out or self.unique(hint)
        self.new_nodes.append(helper.make_node(op, inputs, [out], name=self.unique(f"{hint}_{op}"), domain=domain,
                                               **attrs))
        return out

    def consumers(self, tensor: str) -> list:
        return [n for n in [*self.g.node, *self.new_nodes] if tensor in n.input and n.name not in self.dropped]

    def use(self, tensor: str) -> Use:
        """The weight-only closure of ``tensor`` and the nodes where it meets data."""
        closure, frontier, seen, todo = [], [], set(), [tensor]
        while todo:
            t = todo.pop()
            for n in self.consumers(t):
                if n.op_type in ("Shape", "Size"):
                    continue  # only the weight's shape: not its values
                if all(o in self._static for o in n.output) and n.output:
                    if n.name not in seen:
                        seen.add(n.name)
                        closure.append(n)
                        todo.extend(n.output)
                else:
                    frontier.extend((n, i) for i, name in enumerate(n.input) if name == t)
        order = {n.name: i for i, n in enumerate(self.g.node)}
        closure.sort(key=lambda n: order.get(n.name, len(order)))
        return Use(closure, frontier)

    def finish(self, metadata: dict[str, str]) -> None:
        """Add the new nodes in topological order, drop unused nodes and initializers, stamp the metadata."""
        nodes = [n for n in self.g.node if n.name not in self.dropped] + self.new_nodes
        ready = {i.name for i in self.g.input} | set(self.inits) | {""}
        ordered, pending = [], nodes
        while pending:
            rest = [n for n in pending if not all(i in ready for i in n.input)]
            done = [n for n in pending if all(i in ready for i in n.input)]
            if not done:
                missing = sorted({i for n in rest for i in n.input if i not in ready})[:3]
                raise ExportError(f"internal error: the edited graph cannot be ordered (missing {missing})")
            ordered += done
            ready.update(o for n in done for o in n.output)
            pending = rest
        needed = {o.name for o in self.g.output}
        kept = []
        for n in reversed(ordered):  # drop nodes whose outputs nothing uses
            if any(o in needed for o in n.output):
                kept.append(n)
                needed.update(n.input)
        ordered = kept[::-1]
        del self.g.node[:]
        self.g.node.extend(ordered)
        keep = [t for t in self.g.initializer if t.name in needed]
        del self.g.initializer[:]
        self.g.initializer.extend(keep)
        del self.g.value_info[:]
        for item in [*self.g.node, *self.g.input, *self.g.output, *self.g.initializer]:  # the exporter's notes
            del item.metadata_props[:]
            item.doc_string = ""
        for key, value in {"pdbviz_version": __version__, **metadata}.items():
            entry = self.proto.metadata_props.add()
            entry.key, entry.value = key, value


def attr(node, name: str, default):
    """The value of attribute ``name`` of ``node``, or ``default``."""
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def set_attr(node, name: str, value) -> None:
    from onnx import helper

    for i, a in enumerate(node.attribute):
        if a.name == name:
            del node.attribute[i]
            break
    node.attribute.append(helper.make_attribute(name, value))


def data_operand(node, index: int) -> int | None:
    """The input position of the data a weight at ``index`` of ``node`` multiplies, or None if unknown."""
    if node.op_type in ("Conv", "ConvTranspose"):
        return 0 if index == 1 else None
    if node.op_type in ("Gemm", "MatMul"):
        return 1 - index if index in (0, 1) else None
    return None


def fix_shapes(g: Graph, tensor: str, shape: tuple[int, ...]) -> None:
    """Replace ``Shape``/``Size`` of ``tensor`` (which no longer exists) by constants."""
    for n in g.consumers(tensor):
        if n.op_type == "Shape":
            rank = len(shape)
            start, end = attr(n, "start", 0), attr(n, "end", rank)
            value = np.array(shape[slice(start, end)], np.int64)
        elif n.op_type == "Size":
            value = np.array(int(np.prod(shape)), np.int64)
        else:
            continue
        g.node("Identity", [g.const(f"{tensor}_shape", value, np.int64)], f"{tensor}_shape", out=n.output[0])
        g.dropped.add(n.name)
