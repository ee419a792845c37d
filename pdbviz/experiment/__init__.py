"""The headline experiment in one place: ``compare`` (and the ``finetune`` fast path).

A comparison is a set of independent runs: per seed, one float model is
trained (``train_float``); per schedule entry and seed, a quantized model is
fine-tuned from it or trained from scratch (``run_schedule``). ``compare``
runs them one after another; ``pdbviz.sweep`` runs the same functions as tasks
on a Dask cluster. The parts:

- ``runs``: how one run trains (``RunConfig``, ``train_float``,
  ``run_schedule``; the float control ``"float:long"``) and its record
  (``run_record``, ``failed_record``, with the per-image correctness of
  ``test_correct``);
- ``tables``: run records tabulated into ``Results`` (``results_from_records``);
- ``comparison``: ``compare`` itself.

Schedule entries and budgets are parsed in ``pdbviz.analysis.entries``
(``parse_entries``, ``Budget``); the names ``compare``'s callers need are
re-exported here.
"""

from ..analysis.entries import (AllocEntry, Budget, Entry, InvalidEntry, ScheduleEntry, entry_metrics, parse_entries,
                                parse_entry, resolve_entries, resolve_schedule)
from .comparison import DEFAULT_SCHEDULES, check_schedules, compare, entry_sensitivity, is_float_preset
from .runs import (RunConfig, failed_record, finetune, float_control_label, is_float_control, label_runs, make_model,
                   run_record, run_schedule, runs_of, test_correct, train_float)
from .tables import results_from_records, run_settings

__all__ = ["AllocEntry", "Budget", "DEFAULT_SCHEDULES", "Entry", "InvalidEntry", "RunConfig", "ScheduleEntry",
           "check_schedules", "compare", "entry_metrics", "entry_sensitivity", "failed_record", "finetune",
           "float_control_label", "is_float_control", "is_float_preset", "label_runs", "make_model", "parse_entries",
           "parse_entry", "resolve_entries", "resolve_schedule", "results_from_records", "run_record", "run_schedule",
           "run_settings", "runs_of", "test_correct", "train_float"]
