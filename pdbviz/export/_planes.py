"""A weight as k binary planes stacked along one more axis: how QONNX writes grids without a zero.

DoReFa's k-bit levels ``(c + 1/2) s`` (and the 1-bit ``+-s``) are
``sum_j coef_j b_j`` with ``b_j`` in {-1, +1} and ``coef_j = s 2^j / 2``. The
planes, stacked, are one ``BipolarQuant`` (typed ``BIPOLAR`` by qonnx, no
zeros), used by one layer with k times its outputs, whose results are scaled
and summed: the planes along the output channels of a ``Conv`` /
``ConvTranspose`` (within each group) or of a ``Gemm``, or along a new
leading axis carried through the weight's reshapes to a ``MatMul`` or
``Gather``. ``write`` says why not where a use is none of these.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._graph import Graph, Use, attr, fix_shapes

_LEADING = ("Transpose", "Slice", "Reshape", "Squeeze", "Unsqueeze", "Identity", "Cast", "Gather", "Split")


def _why_not(g: Graph, weight: str, use: Use) -> str:
    if not use.frontier:
        return "it is not used"
    ops = [(n.op_type, i) for n, i in use.frontier]
    if not use.closure and all(op in ("Conv", "ConvTranspose") and i == 1 for op, i in ops):
        if any(g.shape(n.output[0]) is None for n, _ in use.frontier):
            return "the shape of its layer's output is not static"
        return ""
    if not use.closure and all(op == "Gemm" and i == 1 for op, i in ops):
        return ""
    for n in use.closure:
        if n.op_type not in _LEADING or n.op_type == "Gather" and n.input[0] not in _closure_tensors(weight, use):
            return f"the graph computes {n.op_type} of the weight before using it"
    for n, i in use.frontier:
        if n.op_type == "Gather" and i == 0:
            if g.shape(n.output[0]) is None:
                return "the shape of its Gather's output is not static"
            continue
        if n.op_type != "MatMul":
            return f"its weight meets the data in {n.op_type}, which is not linear in it"
        w, x = g.shape(n.input[i]), g.shape(n.input[1 - i])
        if w is None or x is None or len(w) < 2 or len(x) < 2 or n.input[0] == n.input[1]:
            return "its MatMul has operands of unknown or vector shape"
    return ""


def _closure_tensors(weight: str, use: Use) -> set[str]:
    return {weight} | {o for n in use.closure for o in n.output}


def write(g: Graph, weight: str, shape: tuple[int, ...], use: Use, planes: np.ndarray, coefs: np.ndarray,
          bipolar: Callable[[np.ndarray, str], str], hint: str) -> str:
    """Replace every use of ``weight`` by its planes; '' when done, else why not (nothing changed)."""
    why = _why_not(g, weight, use)
    if why:
        return why
    if not use.closure and use.frontier[0][0].op_type in ("Conv", "ConvTranspose"):
        for n, _ in use.frontier:
            _conv(g, n, shape, planes, coefs, bipolar, f"{hint}_{len(g.new_nodes)}")
    elif not use.closure and use.frontier[0][0].op_type == "Gemm":
        for n, _ in use.frontier:
            _gemm(g, n, shape, planes, coefs, bipolar, f"{hint}_{len(g.new_nodes)}")
    else:
        _leading(g, weight, use, planes, coefs, bipolar(planes, f"{hint}_planes"), hint)
    for n in use.closure:
        g.dropped.add(n.name)
    fix_shapes(g, weight, shape)
    return ""


def _const_i64(g: Graph, hint: str, values) -> str:
    return g.const(hint, np.asarray(values, np.int64), np.int64)


def _copy(g: Graph, node, inputs: list[str], hint: str) -> str:
    from onnx import helper

    out = g.unique(f"{hint}_mac")
    new = helper.make_node(node.op_type, inputs, [out], name=g.unique(f"{node.name}_planes"), domain=node.domain)
    new.attribute.extend(node.attribute)
    g.new_nodes.append(new)
    return out


def _sum(g: Graph, y: str, coefs: np.ndarray, rank: int, axis: int, hint: str) -> str:
    c = coefs.reshape([1] * axis + [-1] + [1] * (rank - axis - 1)).astype(np.float32)
    y = g.node("Mul", [y, g.const(f"{hint}_coefs", c)], f"{hint}_scaled")
    return g.node("ReduceSum", [y, _const_i64(g, f"{hint}_axis", [axis])], f"{hint}_summed", keepdims=0)


def _finish(g: Graph, node, y: str, bias: str | None, rank: int, hint: str) -> None:
    if bias is not None:
        if node.op_type == "Gemm":
            beta = float(attr(node, "beta", 1.0))
            if beta != 1.0:
                bias = g.node("Mul", [bias, g.const(f"{hint}_beta", beta)], f"{hint}_bias_scaled")
        elif bias in g.inits:
            bias = g.const(f"{hint}_bias", g.array(bias).reshape([1, -1] + [1] * (rank - 2)))
        else:
            bias = g.node("Reshape", [bias, _const_i64(g, f"{hint}_bias_shape", [1, -1] + [1] * (rank - 2))],
                          f"{hint}_bias")
        y = g.node("Add", [y, bias], f"{hint}_biased")
    g.new_nodes[-1].output[0] = node.output[0]  # the last node computes the layer's output
    g.dropped.add(node.name)


def _conv(g, node, shape, planes, coefs, bipolar, hint) -> None:
    k, groups = len(coefs), int(attr(node, "group", 1))
    rest = list(shape[2:])
    if node.op_type == "Conv":  # (O, I/g, *K): output channels ordered (group, plane, channel)
        out_ch = shape[0]
        w = planes.reshape(k, groups, out_ch // groups, shape[1], *rest).swapaxes(0, 1).reshape(k * out_ch, shape[1],
                                                                                                  *rest)
    else:  # ConvTranspose (I, O/g, *K)
        out_ch = groups * shape[1]
        w = planes.reshape(k, groups, shape[0] // groups, shape[1], *rest).transpose(1, 2, 0, 3, *range(4, 4 + len(rest)))
        w = w.reshape(shape[0], k * shape[1], *rest)
    out_shape = g.shape(node.output[0])
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    y = _copy(g, node, [node.input[0], bipolar(w, hint)], hint)
    if k == 1:
        y = g.node("Mul", [y, g.const(f"{hint}_coef", float(coefs[0]))], f"{hint}_scaled")
    else:
        y = g.node("Reshape", [y, _const_i64(g, f"{hint}_split", [0, groups, k, out_ch // groups, -1])],
                   f"{hint}_split")
        y = _sum(g, y, coefs, 5, 2, hint)
        y = g.node("Reshape", [y, _const_i64(g, f"{hint}_shape", [0, out_ch, *out_shape[2:]])], f"{hint}_unsplit")
    _finish(g, node, y, bias, len(out_shape), hint)


def _gemm(g, node, shape, planes, coefs, bipolar, hint) -> None:
    k = len(coefs)
    if attr(node, "transB", 0):
        out_ch, w = shape[0], planes.reshape(k * shape[0], shape[1])
    else:
        out_ch, w = shape[1], planes.transpose(1, 0, 2).reshape(shape[0], k * shape[1])
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    y = _copy(g, node, [node.input[0], bipolar(w, hint)], hint)
    if k == 1:
        from ._graph import set_attr

        set_attr(g.new_nodes[-1], "alpha", float(attr(node, "alpha", 1.0)) * float(coefs[0]))
    else:
        y = g.node("Reshape", [y, _const_i64(g, f"{hint}_split", [0, k, out_ch])], f"{hint}_split")
        y = _sum(g, y, coefs, 3, 1, hint)
    _finish(g, node, y, bias, 2, hint)


def _shift(values) -> list[int]:
    return [int(a) + 1 if a >= 0 else int(a) for a in np.asarray(values).reshape(-1)]


def _leading(g, weight, use, planes, coefs, stacked, hint) -> None:
    from onnx import helper

    rename = {weight: stacked}
    for n in use.closure:
        inputs = [rename.get(i, i) for i in n.input]
        outs = [g.unique(f"{o}_planes") for o in n.output]
        rename.update(zip(n.output, outs))
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        rank = len(g.shape(n.input[0]) or ())
        if n.op_type == "Transpose":
            perm = attrs.get("perm", list(range(rank))[::-1])
            attrs["perm"] = [0] + [p + 1 for p in perm]
        elif n.op_type in ("Gather", "Split"):
            attrs["axis"] = _shift([attrs.get("axis", 0)])[0]
        elif n.op_type == "Slice":
            axes = g.value(n.input[3]) if len(n.input) > 3 and n.input[3] else np.arange(len(g.value(n.input[1])))
            inputs = inputs[:3] + [_const_i64(g, f"{hint}_axes", _shift(axes))] + inputs[4:5]
        elif n.op_type == "Reshape":
            inputs[1] = _const_i64(g, f"{hint}_shape", [0, *np.asarray(g.value(n.input[1])).reshape(-1).tolist()])
        elif n.op_type in ("Squeeze", "Unsqueeze") and len(n.input) > 1:
            inputs[1] = _const_i64(g, f"{hint}_axes", _shift(g.value(n.input[1])))
        g.new_nodes.append(helper.make_node(n.op_type, inputs, outs, name=g.unique(f"{n.name}_planes"), **attrs))
    for node, i in use.frontier:
        w = rename[node.input[i]]
        if node.op_type == "MatMul":
            rw, rx = len(g.shape(node.input[i])), len(g.shape(node.input[1 - i]))
            if rx > rw:  # the plane axis goes before every batch axis of the data
                w = g.node("Unsqueeze", [w, _const_i64(g, f"{hint}_ones", list(range(1, 1 + rx - rw)))],
                           f"{hint}_lifted")
            inputs = [w, node.input[1]] if i == 0 else [node.input[0], w]
            y = _copy(g, node, inputs, hint)
            rank = max(rw, rx) + 1
        else:  # Gather of the weight
            axis = int(attr(node, "axis", 0))
            y = g.node("Gather", [w, node.input[1]], f"{hint}_gathered", axis=axis + 1 if axis >= 0 else axis)
            rank = len(g.shape(node.output[0])) + 1
        _finish(g, node, _sum(g, y, coefs, rank, 0, hint), None, rank, hint)
