"""``MetricStudy``: what ``metric_study`` measured, its text views and its files."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_write, json_default, read_saved_folder

#: version of the study.json layout that ``MetricStudy.save`` writes and ``MetricStudy.load`` reads.
STUDY_FORMAT_VERSION = 1
#: columns of ``MetricStudy.runs``.
RUN_COLUMNS = ["method", "family", "budget", "seed", "w_bits", "avg_bits", "kib", "predicted_loss", "float_acc",
               "test_acc", "acc_drop", "train_seconds", "error", "correct"]
#: columns of ``MetricStudy.summary``.
SUMMARY_COLUMNS = ["method", "family", "budget", "w_bits", "avg_bits", "kib", "predicted_loss", "acc_mean", "acc_std",
                   "acc_ci95", "drop_mean", "n_seeds", "n_schedules"]
_INTERACTION_FILE = "study_interaction.csv"
_FILES = {"runs": "study_runs.csv", "summary": "study_summary.csv", "correlation": "study_correlation.csv",
          "sensitivity": "study_sensitivity.csv"}


@dataclass
class MetricStudy:
    """What ``metric_study`` measured.

    Attributes:
        runs: one row per method, budget and seed (``RUN_COLUMNS``):
            ``method`` (a metric, ``"uniform"`` or ``"float"``), ``family``
            (``"metric"``, ``"uniform"``, ``"float"``, ``"interaction"``), ``budget`` (average
            bits; NaN for float), ``w_bits`` (per layer, dash-joined),
            ``avg_bits`` and ``kib`` of the schedule, ``predicted_loss`` (the
            front's, NaN for the references), ``float_acc`` (the seed's float
            model), ``test_acc`` (%), ``acc_drop = float_acc - test_acc``,
            ``train_seconds``, ``error``, ``correct`` (the run's per-image
            correctness on the test split, ``pdbviz.stats.encode_correct`` text).
        summary: one row per method and budget (``SUMMARY_COLUMNS``): means
            over seeds, ``acc_ci95`` (half-width of the 95% interval over new
            seeds and new test images, from the runs' per-image correctness,
            as ``pdbviz.claims.accuracy_ci95`` computes it),
            ``w_bits`` of the first seed and ``n_schedules`` (distinct
            schedules over the seeds).
        correlation: one row per metric (``rank_correlation``): Spearman's
            rho between predicted loss and accuracy drop (higher is better),
            its bootstrap interval and the per-seed spread.
        sensitivity: every seed's ``sensitivity_metrics`` frame, with a ``seed`` column.
        config: how the study was made (dataset, model, metrics, budgets, seeds, epochs...).
        interaction: with ``interaction_aware=True``, one row per budget: the
            interaction-aware allocation against the additive one
            (``study.interaction.INTERACTION_COLUMNS``); empty otherwise.
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    correlation: pd.DataFrame
    sensitivity: pd.DataFrame
    config: dict = field(default_factory=dict)
    interaction: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __repr__(self) -> str:
        return (f"MetricStudy({len(self.correlation)} metrics x {len(self.config.get('budgets', []))} budgets x "
                f"{len(self.config.get('seeds', []))} seeds on {self.config.get('dataset')!r} / "
                f"{self.config.get('model')!r})")

    def _repr_html_(self) -> str:
        return self.correlation._repr_html_()

    def accuracy_table(self) -> pd.DataFrame:
        """Accuracy (%) at each budget, one row per method, one column per budget: ``"mean ± ci95"`` strings."""
        s = self.summary[self.summary.family != "float"]
        cells = s.assign(cell=[_pm(m, c) for m, c in zip(s.acc_mean, s.acc_ci95)])
        order = list(dict.fromkeys(s.method))
        table = cells.pivot(index="method", columns="budget", values="cell").reindex(order)
        table.columns = [f"{b:g} bits" for b in table.columns]
        return table

    def pretty(self) -> str:
        """The rank correlations and the accuracies at each budget as fixed-width text."""
        c = self.correlation.copy()
        c["spearman (95% CI)"] = [f"{r:+.2f} [{lo:+.2f}, {hi:+.2f}]" for r, lo, hi in zip(c.spearman, c.ci_low,
                                                                                            c.ci_high)]
        c["per seed"] = [_pm(m, s, signed=True) for m, s in zip(c.seed_mean, c.seed_std)]
        flt = self.summary[self.summary.family == "float"]
        head = (f"Rank correlation of predicted loss with measured accuracy drop (Spearman; higher is better), "
                f"{len(self.config.get('seeds', []))} seeds:")
        lines = [head, c[["metric", "spearman (95% CI)", "per seed", "n_runs"]].to_string(index=False), "",
                 "Test accuracy (%, mean ± 95% CI) at each budget (average weight bits):",
                 self.accuracy_table().to_string()]
        if len(flt):
            lines.append(f"float-32: {_pm(flt.acc_mean.iloc[0], flt.acc_ci95.iloc[0])}")
        if len(self.interaction):
            from .interaction import interaction_text

            lines += ["", "Interaction-aware allocation against the additive one (paired over seeds and test "
                      "images):", interaction_text(self.interaction)]
        return "\n".join(lines)

    # -- files ------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the four tables as CSV and ``study.json`` (configuration) into ``directory``, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for attr, fname in _FILES.items():
            with atomic_write(directory / fname, "w", encoding="utf-8") as fh:
                getattr(self, attr).to_csv(fh, index=False)
        if len(self.interaction):
            with atomic_write(directory / _INTERACTION_FILE, "w", encoding="utf-8") as fh:
                self.interaction.to_csv(fh, index=False)
        with atomic_write(directory / "study.json", "w", encoding="utf-8") as fh:
            json.dump({"format_version": STUDY_FORMAT_VERSION, "config": self.config}, fh, indent=2,
                      default=json_default)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "MetricStudy":
        """Read what ``save`` wrote."""
        doc, frames = read_saved_folder(directory, "study.json", STUDY_FORMAT_VERSION, "study", _FILES)
        for name in ("runs", "summary"):  # written before the column was renamed
            if "kind" in frames[name] and "family" not in frames[name]:
                frames[name] = frames[name].rename(columns={"kind": "family"})
        if "correct" not in frames["runs"]:  # written before runs kept their per-image correctness
            frames["runs"]["correct"] = ""
        for name, col in (("runs", "error"), ("runs", "w_bits"), ("runs", "correct"), ("summary", "w_bits")):
            frames[name][col] = frames[name][col].astype(object).fillna("").astype(str)
        path = Path(directory) / _INTERACTION_FILE
        if path.is_file():
            frames["interaction"] = pd.read_csv(path)
        return cls(config=doc["config"], **frames)


def _pm(mean, half, signed: bool = False) -> str:
    if mean is None or not np.isfinite(mean):
        return "--"
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return text if half is None or not np.isfinite(half) else f"{text} ± {half:.2f}"
