"""The results of ``compare``: tidy tables, histories, profiles; CSV/JSON/LaTeX."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ._io import atomic_write, json_default, read_saved_folder

#: version of the results.json layout that ``Results.save`` writes and ``Results.load`` reads.
RESULTS_FORMAT_VERSION = 1
#: columns of ``Results.table``, one row per schedule.
TABLE_COLUMNS = ["schedule", "kind", "w_bits", "a_bits", "kib", "avg_bits", "compression", "acc_mean", "acc_std",
                 "acc_ci95", "n_seeds", "train_seconds", "error"]
_FILES = {"table": "results.csv", "runs": "runs.csv", "history": "history.csv", "profiles": "profiles.csv"}


@dataclass
class Results:
    """What ``compare`` measured.

    Attributes:
        table: one row per schedule: ``schedule`` (its label), ``kind``
            (float / uniform / decreasing / increasing / allocated / custom),
            ``w_bits`` and ``a_bits`` (per layer, dash-joined, forward order),
            ``kib`` (quantized-weight memory), ``avg_bits``, ``compression``
            (vs float-32), ``acc_mean`` and ``acc_std`` over seeds (test
            accuracy, %), ``acc_ci95`` (half-width of the 95% interval of the
            mean: seed spread and the test set's size), ``n_seeds``, ``train_seconds`` (mean per seed),
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

    def __repr__(self) -> str:
        return f"Results({len(self.table)} schedules on {self.config.get('dataset')!r} / {self.config.get('model')!r})"

    def _repr_html_(self) -> str:
        return self.table._repr_html_()

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
        """The table as fixed-width text, for terminals."""
        t = self.table.copy()
        t["accuracy %"] = [_pm(m, s) for m, s in zip(t.acc_mean, t.acc_std)]
        cols = ["schedule", "w_bits", "avg_bits", "kib", "compression", "accuracy %", "train_seconds"]
        if (t.error.fillna("") != "").any():
            cols.append("error")
        return t[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}")

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
            lines.append(f"{_tex(r.schedule)} & {_tex(r.w_bits)} & {r.avg_bits:.2f} & {r.kib:.2f} & "
                         f"{r.compression:.1f}$\\times$ & {acc} \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", f"\\caption{{{caption}}}", f"\\label{{{label}}}", "\\end{table}"]
        return "\n".join(lines) + "\n"

    # -- files ------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``results.csv``, ``runs.csv``, ``history.csv``, ``profiles.csv`` and
        ``results.json`` (configuration, schedules and the table) into ``directory``, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for attr, fname in _FILES.items():
            with atomic_write(directory / fname, "w", encoding="utf-8") as fh:
                getattr(self, attr).to_csv(fh, index=False)
        doc = {"format_version": RESULTS_FORMAT_VERSION, "config": self.config, "schedules": self.schedules,
               "table": json.loads(self.table.to_json(orient="records"))}
        with atomic_write(directory / "results.json", "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=2, default=json_default)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "Results":
        """Read what ``save`` wrote."""
        doc, frames = read_saved_folder(directory, "results.json", RESULTS_FORMAT_VERSION, "results", _FILES)
        for col in ("schedule", "kind", "w_bits", "a_bits", "error"):
            frames["table"][col] = frames["table"][col].astype(object).fillna("").astype(str)
        if "error" in frames["runs"]:
            frames["runs"]["error"] = frames["runs"]["error"].astype(object).fillna("").astype(str)
        return cls(config=doc["config"], schedules=doc.get("schedules", {}), **frames)


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
