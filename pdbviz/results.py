"""The results of ``compare``: tidy tables, histories, profiles; CSV/JSON/LaTeX."""

from __future__ import annotations

import json
import math
import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ._io import atomic_write, json_default, read_saved_folder

#: version of the results.json layout that ``Results.save`` writes and ``Results.load`` reads.
RESULTS_FORMAT_VERSION = 1
#: columns of ``Results.table``, one row per schedule.
TABLE_COLUMNS = ["schedule", "shape", "w_bits", "a_bits", "kib", "avg_bits", "compression", "acc_mean", "acc_std",
                 "acc_ci95", "n_seeds", "train_seconds", "error"]
#: the order ``Results.table`` shows its columns in: what a person reads first (schedule, accuracy, memory) leads;
#: the files keep ``TABLE_COLUMNS``' order
DISPLAY_ORDER = ["schedule", "acc_mean", "acc_ci95", "kib", "avg_bits", "compression", "acc_std", "w_bits", "a_bits",
                 "shape", "n_seeds", "train_seconds", "error"]
_FILES = {"table": "results.csv", "runs": "runs.csv", "history": "history.csv", "profiles": "profiles.csv"}


@dataclass
class Results:
    """What ``compare`` measured.

    Attributes:
        table: one row per schedule: ``schedule`` (its label), ``shape``
            (float / uniform / decreasing / increasing / allocated / custom),
            ``w_bits`` and ``a_bits`` (per layer, dash-joined, forward order),
            ``kib`` (quantized-weight memory), ``avg_bits``, ``compression``
            (vs float-32), ``acc_mean`` and ``acc_std`` over seeds (test
            accuracy, %), ``acc_ci95`` (half-width of the 95% interval of the
            mean over new seeds and new test images, from the runs' per-image correctness;
            ``pdbviz.claims.accuracy_ci95``), ``n_seeds``, ``train_seconds`` (mean per seed),
            ``error`` (why a schedule failed; empty otherwise).
        runs: one row per schedule and seed.
        history: per-epoch records of every run, with ``schedule`` and ``seed``.
        profiles: separability profiles (``schedule``, ``seed``, layer, depth, measures).
        config: how the comparison was made (dataset, model, seeds, epochs, versions...).
        schedules: the ``BitSchedule.to_dict()`` of each label (None for float).
        models: the trained models in memory, ``{(label, seed): model}`` (not saved).
    """

    table: pd.DataFrame
    runs: pd.DataFrame
    history: pd.DataFrame
    profiles: pd.DataFrame
    config: dict
    schedules: dict = field(default_factory=dict)
    models: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if isinstance(self.table, pd.DataFrame):
            first = [c for c in DISPLAY_ORDER if c in self.table.columns]
            self.table = self.table[first + [c for c in self.table.columns if c not in first]]

    def __repr__(self) -> str:
        head = f"Results: {len(self.table)} schedules of {self.config.get('model')} on {self.config.get('dataset')}"
        return head + "\n" + self.pretty()

    def _repr_html_(self) -> str:
        return self.display_table().to_html(index=False, escape=True, border=0, classes="pdbviz-results")

    def display_table(self) -> pd.DataFrame:
        """The table for people: readable headers, values to two decimals, compact bit lists.

        Columns: ``schedule``, ``weight bits`` ("8-4-2-1 then 1 x4"),
        ``input bits`` (only when some layer's input is quantized), ``KiB``,
        ``avg bits``, ``compression``, ``accuracy % (mean ± 95% CI)`` (the CI
        over seeds and test images, ``acc_ci95``), ``seed std``, ``seeds`` and
        ``error`` (only when a schedule failed). ``table`` keeps the raw values.

        Example:
            >>> t = pd.DataFrame({"schedule": ["8-4-2-1"], "shape": ["decreasing"], "w_bits": ["8-4-2-1-1-1-1-1"],
            ...                   "a_bits": ["32-32-32-32-32-32-32-32"], "kib": [11.421875], "avg_bits": [1.1546],
            ...                   "compression": [27.7155], "acc_mean": [98.7407], "acc_std": [0.4626],
            ...                   "acc_ci95": [1.1556], "n_seeds": [3], "train_seconds": [0.58], "error": [""]})
            >>> Results(t, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {}).display_table().iloc[0].tolist()
            ['8-4-2-1', '8-4-2-1 then 1 x4', '11.42', '1.15', '27.7x', '98.74 ± 1.16', '0.46', '3']
        """
        t = self.table
        out = pd.DataFrame({"schedule": t.schedule.astype(str), "weight bits": t.w_bits.map(compact_bits)})
        if "a_bits" in t and any(set(str(a).split("-")) - {"32", ""} for a in t.a_bits):
            out["input bits"] = t.a_bits.map(compact_bits)
        out["KiB"] = t.kib.map(lambda v: _num(v, "{:,.2f}"))
        out["avg bits"] = t.avg_bits.map(lambda v: _num(v, "{:.2f}"))
        out["compression"] = t.compression.map(lambda v: _num(v, "{:.1f}x"))
        ci = t.acc_ci95 if "acc_ci95" in t else [math.nan] * len(t)
        out[ACCURACY_HEADER] = [_pm(m, c) for m, c in zip(t.acc_mean, ci)]
        out["seed std"] = t.acc_std.map(lambda v: _num(v, "{:.2f}"))
        out["seeds"] = t.n_seeds.map(lambda v: _num(v, "{:.0f}")) if "n_seeds" in t else ""
        if "error" in t and (t.error.fillna("") != "").any():
            out["error"] = t.error.fillna("")
        return out.reset_index(drop=True)

    def label_of(self, entry: str) -> str | None:
        """The label of the schedule that the entry ``entry`` produced (``"halving"`` -> ``"8-4-2-1"``), or None."""
        for label, given in self.config.get("entries", {}).items():
            if given == entry:
                return label
        return None

    def schedule(self, label: str):
        """The ``BitSchedule`` of a label (None for float or an unknown label)."""
        from .quant import BitSchedule

        data = self.schedules.get(label)
        return BitSchedule.from_dict(data) if data else None

    def claims(self, margin: float = 0.5) -> pd.DataFrame:
        """The paper's claims evaluated on these runs: effect, seed spread, 95% CI, verdict and conclusion of each.

        See ``pdbviz.claims`` for the four claims, the interval (paired over
        seeds and test images when the runs hold per-image correctness) and
        the verdict rule; ``margin`` is the non-inferiority margin (points) of
        the "as accurate" claim. Two labels of the same schedule (by
        ``config["schedule_strings"]``) are "not testable"; the float
        reference is the float control trained as long as the quantized runs
        (entry ``"float:long"``) when the comparison ran it.
        """
        from .claims import evaluate_claims

        return evaluate_claims(self.table, self.runs, self.config.get("entries", {}), self.config.get("n_test"),
                               margin, schedule_strings=self.config.get("schedule_strings"))

    def pretty(self) -> str:
        """The table as fixed-width text, for terminals: ``display_table`` (schedule, bits, memory and accuracy
        with its 95% CI over seeds and test images)."""
        return self.display_table().to_string(index=False)

    def to_latex(self, caption: str | None = None, label: str = "tab:pdbviz") -> str:
        """A booktabs table for a paper: schedule, bits, average bits, KiB, compression, accuracy."""
        cfg = self.config
        n = len(cfg.get("seeds", []))
        seeds = "one seed" if n == 1 else f"{n} seeds"
        test = f" ({cfg['n_test']} test images)" if cfg.get("n_test") else ""
        caption = caption or (f"Test accuracy (\\%, mean $\\pm$ standard deviation over {seeds}) of "
                              f"{_tex(cfg.get('model', ''))} on {_tex(cfg.get('dataset', ''))}{test}, and "
                              "quantized-weight memory.")
        lines = ["\\begin{table}[t]", "\\centering", "\\small", "\\begin{tabular}{llrrrr}", "\\toprule",
                 "Schedule & Bits per layer & Avg.\\ bits & KiB & Compr. & Accuracy (\\%) \\\\", "\\midrule"]
        ok = self.table[self.table.error.fillna("") == ""]
        best = ok.acc_mean.max() if len(ok) else math.nan
        for r in self.table.itertuples():
            acc = _pm(r.acc_mean, r.acc_std, tex=True)
            if r.acc_mean == best:
                acc = f"\\textbf{{{acc}}}"
            bits = _tex(compact_bits(r.w_bits)).replace(" x", "$\\times$")
            lines.append(f"{_tex(r.schedule)} & {bits} & {r.avg_bits:.2f} & {r.kib:.2f} & "
                         f"{r.compression:.1f}$\\times$ & {acc} \\\\")
        caption = "\n  ".join(textwrap.wrap(caption, 96))  # a caption that fits a page (LaTeX joins the lines)
        lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{caption}}}", f"\\label{{{label}}}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    # -- files ------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``results.csv``, ``runs.csv``, ``history.csv``, ``profiles.csv`` and
        ``results.json`` (configuration, schedules and the table) into ``directory``, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for attr, fname in _FILES.items():
            frame = getattr(self, attr)
            if attr == "table":  # the file keeps its column order, whatever order the table shows
                first = [c for c in TABLE_COLUMNS if c in frame.columns]
                frame = frame[first + [c for c in frame.columns if c not in first]]
            with atomic_write(directory / fname, "w", encoding="utf-8") as fh:
                frame.to_csv(fh, index=False)
        first = [c for c in TABLE_COLUMNS if c in self.table.columns]
        table = self.table[first + [c for c in self.table.columns if c not in first]]
        doc = {"format_version": RESULTS_FORMAT_VERSION, "config": self.config, "schedules": self.schedules,
               "table": json.loads(table.to_json(orient="records"))}
        with atomic_write(directory / "results.json", "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, default=json_default)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Results":
        """Read what ``save`` wrote."""
        doc, frames = read_saved_folder(directory, "results.json", RESULTS_FORMAT_VERSION, "results", _FILES)
        if "kind" in frames["table"] and "shape" not in frames["table"]:  # written before the column was renamed
            frames["table"] = frames["table"].rename(columns={"kind": "shape"})
        for col in ("schedule", "shape", "w_bits", "a_bits", "error"):
            frames["table"][col] = frames["table"][col].astype(object).fillna("").astype(str)
        if "error" in frames["runs"]:
            frames["runs"]["error"] = frames["runs"]["error"].astype(object).fillna("").astype(str)
        return cls(config=doc["config"], schedules=doc.get("schedules", {}), **frames)


#: the header of the accuracy column of ``Results.display_table`` (and of the README's table)
ACCURACY_HEADER = "accuracy % (mean ± 95% CI)"


def compact_bits(bits) -> str:
    """A per-layer bit list (``"8-4-2-1-1-1-1-1"``) as a person reads it: ``"8-4-2-1 then 1 x4"``.

    Runs of three or more equal values are written ``value xcount``; a run
    that ends the list after other values keeps its first value in the list
    (the last value held, as in a schedule string).

    Example:
        >>> compact_bits("8-4-2-1-1-1-1-1"), compact_bits("32-32-32-32-32-32-32-32"), compact_bits("1-1-1-1-1-2-4-8")
        ('8-4-2-1 then 1 x4', '32 x8', '1 x5 then 2-4-8')
        >>> compact_bits("8-4-2-1"), compact_bits("")
        ('8-4-2-1', '')
    """
    values = [v for v in str(bits).split("-") if v != ""]
    if not values:
        return ""
    runs: list[list] = []
    for v in values:
        if runs and runs[-1][0] == v:
            runs[-1][1] += 1
        else:
            runs.append([v, 1])
    parts: list[str] = []  # plain groups ("8-4-2") and runs ("1 x5"), joined by "then"
    plain: list[str] = []
    for i, (v, n) in enumerate(runs):
        if n >= 3:
            if i == len(runs) - 1 and (plain or parts):
                plain.append(v)  # the held value: "8-4-2-1 then 1 x4"
                n -= 1
            if plain:
                parts.append("-".join(plain))
                plain = []
            parts.append(f"{v} x{n}")
        else:
            plain += [v] * n
    if plain:
        parts.append("-".join(plain))
    return " then ".join(parts)


def _num(value, fmt: str) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return ""
    return fmt.format(value) if math.isfinite(value) else ""


def _pm(mean, std, tex=False):
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "--" if tex else "failed"
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.2f}"
    return f"{mean:.2f} $\\pm$ {std:.2f}" if tex else f"{mean:.2f} ± {std:.2f}"


_TEX = {"\\": "\\textbackslash{}", "_": "\\_", "%": "\\%", "&": "\\&", "#": "\\#", "$": "\\$", "{": "\\{",
        "}": "\\}", "~": "\\~{}", "^": "\\^{}",
        "→": "$\\to$", "±": "$\\pm$"}


def _tex(text) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))
