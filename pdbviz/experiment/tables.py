"""Run records tabulated into ``Results``: one row per schedule entry, in ``compare``'s order."""

from __future__ import annotations

import platform
import statistics
from collections.abc import Sequence
from dataclasses import asdict

import pandas as pd
import torch
from torch import nn

from .._version import __version__
from ..claims import accuracy_ci95
from ..data import Data
from ..quant import BitSchedule, memory_summary
from ..quant.presets import PRESETS, NamedSchedule
from ..results import TABLE_COLUMNS, Results
from .runs import RunConfig

#: columns of ``Results.runs``.
#: ``correct`` is the per-image correctness on the test split (``pdbviz.stats.encode_correct``; "" when unknown).
RUN_COLUMNS = ["schedule", "seed", "test_acc", "train_seconds", "error", "correct"]


def run_settings(data: Data, model, width: float, seeds: Sequence[int], config: RunConfig,
                 profile_metrics: Sequence[str], n_samples: int) -> dict:
    """The settings a comparison records in ``Results.config`` (before versions and schedules are added).

    Example:
        >>> from pdbviz import load_dataset
        >>> s = run_settings(load_dataset("digits"), "lenet", 1.0, [0], RunConfig(), ["fisher"], 100)
        >>> s["dataset"], s["epochs"], s["n_test"], "progress" in s
        ('digits', 20, 450, False)
    """
    settings = {"dataset": data.name, "model": model if isinstance(model, str) else type(model).__name__,
                "width": width, "seeds": list(seeds), **asdict(config), "profile_metrics": list(profile_metrics),
                "n_samples": n_samples, "n_test": len(data.test) if data.test is not None else None}
    settings.pop("progress")
    return settings


def results_from_records(records: Sequence[dict], entries: Sequence[tuple[NamedSchedule, str]], template: nn.Module,
                         settings: dict, profiles: Sequence[pd.DataFrame], show_float: bool,
                         keep_models: bool = True) -> Results:
    """Tabulate run records (float runs first, then each entry's runs, as ``compare`` makes them) into ``Results``.

    ``entries`` are the resolved ``(NamedSchedule, error)`` pairs
    (``analysis.entries.resolve_entries``); ``profiles`` the separability
    profiles, each with ``schedule`` and ``seed`` columns. The float runs are
    shown only with ``show_float`` (the entries hold the ``"float"`` preset).
    """
    float_label = PRESETS["float"].label
    shown = [r for r in records if r["run"]["schedule"] != float_label or show_float]
    runs = pd.DataFrame([r["run"] for r in shown], columns=RUN_COLUMNS)
    runs["correct"] = runs.correct.fillna("").astype(str)  # records written before it was measured lack it
    histories = [r["history"] for r in shown if r["history"] is not None]
    profile_cols = ["schedule", "seed", *(c for c in profiles[0].columns if c not in ("schedule", "seed"))] \
        if profiles else []
    return Results(
        table=_table(entries, runs, template, settings.get("n_test")), runs=runs,
        history=pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(),
        profiles=pd.concat(profiles, ignore_index=True)[profile_cols] if profiles else pd.DataFrame(),
        config=_config(settings, entries, template),
        schedules={n.label: (n.schedule.to_dict() if n.schedule is not None else None) for n, _ in entries},
        models={(r["run"]["schedule"], r["run"]["seed"]): r["model"] for r in shown if r["model"] is not None}
        if keep_models else {},
    )


def _config(settings: dict, entries, template: nn.Module) -> dict:
    return {**settings, "layers": BitSchedule.uniform(template, 32).layers,
            "pdbviz_version": __version__, "torch_version": torch.__version__, "python": platform.python_version(),
            "entries": {n.label: n.entry for n, _ in entries},
            "schedule_strings": {n.label: (n.schedule.to_string(template) if n.schedule is not None else n.shape)
                                 for n, _ in entries}}


def _table(entries, runs: pd.DataFrame, template: nn.Module, n_test: int | None = None) -> pd.DataFrame:
    n_layers = len(BitSchedule.uniform(template, 32))
    rows = []
    for named, error in entries:
        r = runs[runs.schedule == named.label]
        ok = r[r.error == ""]
        accs = ok.test_acc.tolist()
        errors = [error] if error else sorted(set(r.error[r.error != ""]))
        mem = memory_summary(template, named.schedule) if named.schedule is not None and not error else None
        if named.schedule is not None:
            w, a = named.schedule.w_bits, named.schedule.a_bits
        else:
            w = a = [] if error else [32] * n_layers
        if mem is None and named.shape == "float" and not error:
            mem = memory_summary(template)
        rows.append({
            "schedule": named.label, "shape": named.shape, "w_bits": "-".join(map(str, w)),
            "a_bits": "-".join(map(str, a)),
            "kib": mem.quantized_weight_kib if mem else float("nan"),
            "avg_bits": mem.avg_bits if mem else float("nan"),
            "compression": mem.compression if mem else float("nan"),
            "acc_mean": statistics.mean(accs) if accs else float("nan"),
            "acc_std": statistics.stdev(accs) if len(accs) > 1 else float("nan"),
            "acc_ci95": accuracy_ci95(accs, n_test, correct=ok.correct.tolist() if "correct" in ok else None),
            "n_seeds": len(accs), "train_seconds": statistics.mean(ok.train_seconds) if accs else float("nan"),
            "error": "; ".join(errors),
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)
