"""The runs of one dataset x one model in a sweep: their keys, what has landed, and the ``Results`` at the end.

A ``Plan`` parses the schedule entries once and resolves them as ``compare`` does
(allocated entries once the first seed's float profile exists), gives every run its key
(``store.run_key``), keeps each run's record as it lands (from a worker or from
disk), and assembles the records in ``compare``'s order with
``experiment.results_from_records``.
"""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass, field

import pandas as pd
from torch import nn

from ..data import Data
from ..experiment import (AllocEntry, RunConfig, is_float_preset, label_runs, make_model, parse_entries,
                          resolve_entries, results_from_records, run_settings, runs_of)
from ..quant import memory_summary
from ..quant.presets import PRESETS, NamedSchedule
from ..results import Results
from .store import fingerprint_data, fingerprint_model, run_key


@dataclass(frozen=True)
class RunRecord:
    """One finished run of a sweep, as it lands (``sweep(on_result=...)`` receives these).

    Attributes:
        key: the run's key (its files in ``<out>/runs/`` start with it).
        dataset, model: the pair the run belongs to.
        label: the schedule's label (``"8-4-2-1"``, ``"uniform 2-bit"``, ``"float-32"``).
        entry: the schedule entry as given (``"halving"``, ``"2"``, ``"alloc:1.5"``).
        shape: float / uniform / decreasing / increasing / allocated / custom.
        schedule: the one-line schedule (``"8-4-2-1"``; ``"32"`` for float).
        seed: the run's seed.
        test_acc: test accuracy in % (NaN when it failed).
        kib, avg_bits: quantized-weight memory and average weight bits.
        train_seconds: training time of the run.
        error: why it failed; empty otherwise.
        resumed: True when it was read back from disk rather than run now.
        done, total: runs finished so far in this sweep, and all of them.
        history: its per-epoch history (None when it failed).
        correct: its per-image correctness on the test split (``pdbviz.stats.encode_correct`` text; "" when
            it failed or was recorded without it).
    """

    key: str
    dataset: str
    model: str
    label: str
    entry: str
    shape: str
    schedule: str
    seed: int
    test_acc: float
    kib: float
    avg_bits: float
    train_seconds: float
    error: str
    resumed: bool
    done: int
    total: int
    history: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    correct: str = field(default="", repr=False)


def model_name(model) -> str:
    return model if isinstance(model, str) else type(model).__name__


@dataclass
class Plan:
    """One dataset x one model of a sweep (see the module docstring)."""

    data: Data
    model: str | nn.Module
    schedules: list
    seeds: list[int]
    config: RunConfig
    width: float
    profile_metrics: tuple[str, ...]
    n_samples: int
    data_name: str | None = None  # the dataset's name when it was given by name: workers load it themselves
    template: nn.Module = field(init=False)
    entries: list = field(init=False)  # the parsed entries (analysis.entries), one per schedule
    resolved: list = field(init=False)  # (NamedSchedule | None, error), None while an allocated entry waits
    records: dict = field(init=False, default_factory=dict)  # key -> {"run", "history", "profile", "model"}

    def __post_init__(self):
        self.template = make_model(self.model, self.data, self.seeds[0], self.width)
        self._data_desc = fingerprint_data(self.data)
        self._model_desc = fingerprint_model(self.model, self.width)
        self._memory: dict[str, tuple[float, float]] = {}
        self.entries = parse_entries(self.schedules, self.template, errors="keep")
        self.resolved = [(None, "") if isinstance(e, AllocEntry) else
                         label_runs(resolve_entries([e], self.template), self.config)[0] for e in self.entries]

    @property
    def name(self) -> tuple[str, str]:
        return self.data.name, model_name(self.model)

    # -- keys -------------------------------------------------------------
    def _profile_part(self, seed: int):
        return {"metrics": list(self.profile_metrics), "n_samples": self.n_samples} if seed == self.seeds[0] else None

    def profile_spec(self, seed: int):
        """What the tasks of ``seed`` profile: the first seed's runs only, as ``compare`` does."""
        return (tuple(self.profile_metrics), self.n_samples) if seed == self.seeds[0] else None

    def float_key(self, seed: int) -> str:
        c = self.config
        return run_key(task="float", seed=seed, model=self._model_desc, data=self._data_desc,
                       train={"epochs": c.epochs, "lr": c.lr, "batch_size": c.batch_size, "device": c.device},
                       profile=self._profile_part(seed))

    def schedule_key(self, named: NamedSchedule, seed: int) -> str:
        c = self.config
        if c.finetune:
            train = {"finetune": True, "finetune_epochs": c.finetune_epochs, "finetune_lr": c.finetune_lr,
                     "batch_size": c.batch_size, "device": c.device, "float": self.float_key(seed)}
        else:
            train = {"finetune": False, "epochs": c.epochs, "lr": c.lr, "batch_size": c.batch_size,
                     "device": c.device}
        return run_key(task="schedule", entry=named.entry, label=named.label,
                       schedule=named.schedule.to_dict() if named.schedule is not None else None,
                       seed=seed, model=self._model_desc, data=self._data_desc, train=train,
                       profile=self._profile_part(seed))

    # -- entries and runs -------------------------------------------------
    @property
    def waiting(self) -> bool:
        """True while separability-allocated entries wait for the first seed's float profile."""
        return any(named is None and not error for named, error in self.resolved)

    def n_waiting_runs(self) -> int:
        return sum(named is None and not error for named, error in self.resolved) * len(self.seeds)

    def resolve_allocated(self, profile: pd.DataFrame | None) -> None:
        """Resolve the ``"alloc:"`` entries from the first seed's float profile (None: they fail)."""
        todo = [i for i, (named, error) in enumerate(self.resolved) if named is None and not error]
        done = resolve_entries([self.entries[i] for i in todo], self.template, profile)
        for i, pair in zip(todo, done):
            self.resolved[i] = pair

    def schedule_runs(self) -> list[tuple[NamedSchedule, int, str]]:
        """``(named, seed, key)`` of every resolved schedule run, in ``compare``'s order."""
        return [(named, seed, self.schedule_key(named, seed)) for named, error in self.resolved
                if named is not None and not error and runs_of(named) for seed in self.seeds]

    def describe(self, task: str, named: NamedSchedule | None, seed: int) -> dict:
        """What a run's JSON record says about it besides its numbers."""
        named = named or NamedSchedule("float", PRESETS["float"].label, "float", None)
        return {"task": task, "dataset": self.data.name, "model": model_name(self.model), "entry": named.entry,
                "label": named.label, "shape": named.shape, "seed": seed,
                "schedule": named.schedule.to_dict() if named.schedule is not None else None,
                "schedule_string": named.schedule.to_string(self.template) if named.schedule is not None else "32",
                "settings": {"data": self._data_desc, "model": self._model_desc, "width": self.width,
                             **asdict(self.config), "profile_metrics": list(self.profile_metrics),
                             "n_samples": self.n_samples},
                "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}

    def run_record(self, key: str, doc: dict, history, resumed: bool, done: int, total: int) -> RunRecord:
        """The ``RunRecord`` of a landed run (memory from the template, as the table computes it)."""
        kib, avg = self._memory_of(doc)
        run = doc["run"]
        return RunRecord(key=key, dataset=self.data.name, model=model_name(self.model), label=doc["label"],
                         entry=doc["entry"], shape=doc.get("shape", doc.get("schedule_kind", "")), schedule=doc["schedule_string"],
                         seed=int(run["seed"]), test_acc=float(run["test_acc"]), kib=kib, avg_bits=avg,
                         train_seconds=float(run["train_seconds"]), error=run["error"], resumed=resumed, done=done,
                         total=total, history=history, correct=run.get("correct") or "")

    def _memory_of(self, doc: dict) -> tuple[float, float]:
        label = doc["label"]
        if label not in self._memory:
            from ..quant import BitSchedule

            sched = BitSchedule.from_dict(doc["schedule"]) if doc["schedule"] else None
            try:
                s = memory_summary(self.template, sched) if sched is not None else memory_summary(self.template)
                self._memory[label] = (s.quantized_weight_kib, s.avg_bits)
            except (ValueError, TypeError):
                self._memory[label] = (float("nan"), float("nan"))
        return self._memory[label]

    # -- results ----------------------------------------------------------
    def results(self, keep_models: bool) -> Results:
        """The ``Results`` of every landed run, in ``compare``'s order."""
        flt = PRESETS["float"].label
        records, profiles = [], []
        for seed in self.seeds:
            rec = self.records.get(self.float_key(seed))
            if rec is not None:
                records.append(rec)
                if seed == self.seeds[0] and rec.get("profile") is not None:
                    profiles.append(rec["profile"].assign(schedule=flt, seed=seed))
        for named, seed, key in self.schedule_runs():
            rec = self.records.get(key)
            if rec is not None:
                records.append(rec)
                if seed == self.seeds[0] and rec.get("profile") is not None:
                    profiles.append(rec["profile"].assign(schedule=named.label, seed=seed))
        entries = [(named, error) if named is not None else
                   (NamedSchedule(entry.text, entry.text, "allocated", None), "not resolved")
                   for entry, (named, error) in zip(self.entries, self.resolved)]
        settings = run_settings(self.data, self.model, self.width, self.seeds, self.config, self.profile_metrics,
                                self.n_samples)
        return results_from_records(records, entries, self.template, settings, profiles,
                                    show_float=any(is_float_preset(e) for e in self.entries), keep_models=keep_models)
