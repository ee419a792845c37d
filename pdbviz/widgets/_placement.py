"""Where the dashboards put run labels and how far their axes reach: kept inside the plot, none on another."""

from __future__ import annotations


#: where a run's label may sit around its point, in the order tried
LABEL_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "bottom left")


def label_positions(xs, ys, x_range, y_range, box=(0.09, 0.08)) -> list[str]:
    """A text position for each point's label such that no label covers another label or point.

    Greedy, in the order given (the newest run last): each label takes the
    first of ``LABEL_POSITIONS`` whose box (``box``: width and height as
    fractions of the axes' ranges) overlaps no label placed before and no
    other point; when none is free, the first.

    Example:
        >>> label_positions([10.0, 10.2, 30.0], [98.0, 98.1, 97.0], (0, 40), (96, 99))
        ['bottom center', 'top center', 'top center']
    """
    w, h = box
    sx, sy = (x_range[1] - x_range[0]) or 1.0, (y_range[1] - y_range[0]) or 1.0
    pts = [((x - x_range[0]) / sx, (y - y_range[0]) / sy) for x, y in zip(xs, ys)]
    offsets = {"top center": (-w / 2, 0.02), "bottom center": (-w / 2, -0.02 - h), "middle right": (0.02, -h / 2),
               "middle left": (-0.02 - w, -h / 2), "top right": (0.01, 0.01), "bottom left": (-0.01 - w, -0.01 - h)}
    placed: list[tuple[float, float, float, float]] = []
    out = []
    for i, (px, py) in enumerate(pts):
        choice = LABEL_POSITIONS[0]
        for pos in LABEL_POSITIONS:
            dx, dy = offsets[pos]
            b = (px + dx, py + dy, px + dx + w, py + dy + h)
            hits_label = any(b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3] for o in placed)
            hits_point = any(b[0] <= qx <= b[2] and b[1] <= qy <= b[3] for j, (qx, qy) in enumerate(pts) if j != i)
            if not hits_label and not hits_point:
                choice = pos
                break
        dx, dy = offsets[choice]
        placed.append((px + dx, py + dy, px + dx + w, py + dy + h))
        out.append(choice)
    return out


def padded_range(values, fraction: float = 0.12, minimum: float = 1.0) -> list[float]:
    """``[low, high]`` around ``values`` with ``fraction`` of their span (at least ``minimum``) on each side:
    room for the labels above and below the points.

    Example:
        >>> padded_range([97.5, 98.5])
        [97.38, 98.62]
    """
    vals = [float(v) for v in values if v is not None and v == v]
    if not vals:
        return [0.0, 1.0]
    low, high = min(vals), max(vals)
    pad = max(high - low, minimum) * fraction
    return [round(low - pad, 6), round(high + pad, 6)]


def fit_run_axes(scatter, float_accuracy: float | None = None) -> None:
    """Fit the BitAllocator's accuracy-vs-memory axes: room for the run labels above and below the points (and
    the float line), every point and the front inside, and the labels placed by ``label_positions``.

    ``scatter`` holds the runs (trace 0, labelled), the stopped runs (1) and the predicted front (2).
    """
    runs, part, front = scatter.data[0], scatter.data[1], scatter.data[2]
    xs = list(runs.x or ()) + list(part.x or ()) + (list(front.x or ()) if front.visible else [])
    ys = list(runs.y or ()) + list(part.y or ()) + ([float_accuracy] if float_accuracy else [])
    if not xs or not ys:
        return
    x_range = padded_range(xs, 0.08, minimum=1e-3)
    y_range = padded_range(ys, 0.15, minimum=1.0)
    with scatter.batch_update():
        scatter.layout.xaxis.range = x_range
        scatter.layout.yaxis.range = y_range
        runs.textposition = label_positions(list(runs.x), list(runs.y), x_range, y_range) \
            if len(runs.x or ()) else "top center"
