"""The claims in words: a one-line conclusion per claim, the terminal text and the report's HTML table."""

from __future__ import annotations

import html
import math

import pandas as pd

from ..stats import ALPHA, POWER

_COLOURS = {"holds": "#1b7837", "within noise": "#8c6d00", "does not hold": "#b2182b", "not testable": "#555555",
            "not measured": "#777777"}


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _sizes(seeds, images) -> str:
    parts = [f"{int(seeds):,} seeds" for _ in [0] if not _missing(seeds)] + \
        [f"{int(images):,} test images" for _ in [0] if not _missing(images)]
    if not parts:
        return "is out of reach of more seeds or more test images alone"
    return "would take " + " or ".join(parts)


def conclusion(row: dict, relation: str, margin: float) -> str:
    """One line: the verdict, both schedules with their memories, the effect and its interval, and for a
    "within noise" verdict the minimum detectable effect and the seeds or images that would decide."""
    v = row["verdict"]
    if v == "not measured":
        return f"not measured: {row['note']}"
    mem = f"{row['schedule']} ({row['schedule_kib']:.2f} KiB) vs {row['baseline']} ({row['baseline_kib']:.2f} KiB)"
    if v == "not testable":
        return f"not testable: {mem} are the same schedule"
    line = f"{v}: {mem}: {row['effect']:+.2f} points, 95% CI [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
    if relation == "as accurate":
        line += f" (non-inferior if above -{margin:g})"
    if v != "within noise":
        return line
    target = row["effect"] + margin if relation == "as accurate" else row["effect"]
    what = f"its {target:.2f}-point distance from -{margin:g}" if relation == "as accurate" else \
        f"{row['effect']:+.2f} points"
    return (f"{line}; the experiment detects {row['mde']:.2f} points ({POWER:.0%} power, {ALPHA:.0%} two-sided); "
            f"detecting {what} {_sizes(row['seeds_needed'], row['images_needed'])}")


def text(claims: pd.DataFrame) -> str:
    """Fixed-width lines: the float reference, then each claim's statement, conclusion and details."""
    lines = []
    if len(claims) and "float_run" in claims.columns:
        lines.append(f"float reference: {claims.float_run.iloc[0]}")
    for r in claims.itertuples():
        lines.append(f"({r.claim}) {r.statement}")
        lines.append(f"     {r.conclusion}")
        if r.verdict not in ("not measured", "not testable"):
            lines.append(f"     seed std {r.seed_std:.2f}; {r.note}")
    return "\n".join(lines)


def html_table(claims: pd.DataFrame) -> str:
    """An HTML table of the claims, the float reference above it."""
    rows = []
    for r in claims.itertuples():
        measured = r.verdict not in ("not measured", "not testable")
        effect = f"{r.effect:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]" if measured else ""
        mem = f" ({r.schedule_kib:.2f} vs {r.baseline_kib:.2f} KiB)" if math.isfinite(r.schedule_kib) and \
            math.isfinite(r.baseline_kib) else ""
        rows.append(f"<tr><td>({html.escape(r.claim)}) {html.escape(r.statement)}</td><td>"
                    f"{html.escape(str(r.schedule))} vs {html.escape(str(r.baseline))}{mem}</td><td>{effect}</td>"
                    f"<td style='color:{_COLOURS.get(r.verdict, '#000')}'><b>{html.escape(r.verdict)}</b></td>"
                    f"<td>{html.escape(r.conclusion)}</td></tr>")
    ref = f"<p>Float reference: {html.escape(str(claims.float_run.iloc[0]))}.</p>" if len(claims) else ""
    return (ref + "<table class='pdbviz-claims'><tr><th>claim</th><th>compared</th><th>effect, 95% CI (points)</th>"
            "<th>verdict</th><th>conclusion</th></tr>" + "".join(rows) + "</table>")
