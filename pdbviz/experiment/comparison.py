"""``compare``: the float model once per seed, then every schedule entry, tabulated into ``Results``."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd
from torch import nn

from .._checks import POSITIVE_INT, POSITIVE_REAL, validate_params
from ..analysis import sensitivity_metrics, separability_profile
from ..analysis.entries import ALLOC_BITS, Entry, ScheduleEntry, entry_metrics, parse_entries, resolve_entries
from ..data import Data, as_data
from ..quant.presets import PRESETS
from ..results import Results
from .runs import RunConfig, label_runs, make_model, run_schedule, runs_of, train_float
from .tables import results_from_records, run_settings

log = logging.getLogger(__name__)

#: The default comparison: the paper's questions in nine schedules, and the float control trained as long as the
#: quantized runs (``"float:long"``), the float reference of the claims.
DEFAULT_SCHEDULES = ("float", "float:long", "1", "2", "4", "halving", "linear", "increasing", "alloc:2", "alloc:1.5")


def check_schedules(schedules: Sequence, model: nn.Module) -> list[Entry]:
    """Parse every entry for ``model`` (``analysis.entries.parse_entries``), raising ValueError/TypeError for the
    first one ``compare`` could not run; returns the parsed entries, which ``compare`` and ``sweep`` take as they are.

    Allocated entries are checked for their metric and budget (their
    schedule needs the trained model's profile or sensitivity).

    Example:
        >>> from pdbviz import build_model
        >>> check_schedules(["alloc:nope:2"], build_model("lenet"))
        Traceback (most recent call last):
        ...
        ValueError: unknown metric 'nope' in schedule entry 'alloc:nope:2'; available: fisher, probe, ...
    """
    return parse_entries(schedules, model, errors="raise")


def is_float_preset(entry: Entry) -> bool:
    """True for the ``"float"`` preset entry: the float runs are shown in the table."""
    return isinstance(entry, ScheduleEntry) and entry.is_float_preset


@validate_params({"epochs": POSITIVE_INT, "finetune_epochs": POSITIVE_INT, "batch_size": POSITIVE_INT,
                  "n_samples": POSITIVE_INT, "lr": POSITIVE_REAL, "finetune_lr": POSITIVE_REAL,
                  "width": POSITIVE_REAL})
def compare(data="digits", model: str | nn.Module = "lenet", schedules: Sequence = DEFAULT_SCHEDULES,
            epochs: int = 20, seeds: Sequence[int] = (0,), finetune: bool = True, finetune_epochs: int = 3,
            lr: float = 3e-3, finetune_lr: float = 1e-3, batch_size: int = 64, width: float = 1.0,
            profile_metrics: Sequence[str] = ("fisher", "probe"), n_samples: int = 1000, device="auto",
            progress: bool = True, keep_models: bool = True) -> Results:
    """Train the float model once per seed, then every schedule, and tabulate.

    Args:
        data: a ``Data`` or a dataset name (default ``"digits"``).
        model: a zoo model name, or an (untrained) ``nn.Module`` copied for each seed.
        schedules: entries as in ``pdbviz.analysis.entries`` (presets, one-line
            schedules, ``BitSchedule``s, ``"alloc:B"``, ``"alloc:METRIC:B"``, or
            entries already parsed by ``check_schedules``); ``"alloc:METRIC:B"``
            entries measure METRIC on the first seed's float model, on
            ``n_samples`` test samples. The default answers the paper's
            questions: float; the float control trained as long as the
            quantized runs (``"float:long"``: ``finetune_epochs`` more at
            ``finetune_lr``, labelled ``"float-32 (+3 epochs)"``); uniform 1, 2, 4 bits; 8-4-2-1 (halving per
            stage); a linear decrease; the increasing control;
            separability-allocated at the memory of uniform 2-bit (``"alloc:2"``)
            and 25% less (``"alloc:1.5"``).
        epochs: float training epochs (and from-scratch epochs when ``finetune=False``).
        seeds: one run per seed; accuracies are reported as mean and std.
        finetune: fine-tune each schedule from the float model of the same seed
            (``finetune_epochs`` at ``finetune_lr``), else train from scratch.
        profile_metrics: measures of the separability profiles recorded for the
            float model and every schedule (first seed); allocation uses the
            first of them.

    Each entry is parsed once; an entry that cannot be parsed or run is
    recorded with its error, and the others are kept.

    Example:
        >>> r = compare("digits", schedules=["float", "2"], epochs=1, finetune_epochs=1, progress=False)
        >>> r.table.schedule.tolist()
        ['float-32', 'uniform 2-bit']
    """
    data = as_data(data)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed")
    config = RunConfig(epochs, finetune, finetune_epochs, lr, finetune_lr, batch_size, device, progress)
    template = make_model(model, data, seeds[0], width)
    entries = parse_entries(schedules, template, errors="keep")
    if not entries:
        raise ValueError("schedules is empty")
    bar = _progress_bar(progress, len(seeds) * (1 + sum(not is_float_preset(e) for e in entries)))
    records = []

    def done(rec):
        records.append(rec)
        if bar is not None:
            r = rec["run"]
            bar.set_postfix_str(f"{r['schedule']} (seed {r['seed']}): {r['test_acc']:.2f}%")
            bar.update(1)

    float_models = {}
    for seed in seeds:
        rec = train_float(model, data, seed, config, width)
        float_models[seed] = rec["model"]
        done(rec)
    base_profile = separability_profile(float_models[seeds[0]], data, metrics=profile_metrics, n_samples=n_samples,
                                        seed=seeds[0])
    profiles = [base_profile.assign(schedule=PRESETS["float"].label, seed=seeds[0])]
    sensitivity = entry_sensitivity(entries, float_models[seeds[0]], data, n_samples, seeds[0])
    resolved = label_runs(resolve_entries(entries, template, base_profile, sensitivity), config)
    for named, error in resolved:
        if error or not runs_of(named):
            continue
        for seed in seeds:
            rec = run_schedule(named, seed, data, config, float_models[seed], model, width)
            done(rec)
            if seed == seeds[0] and rec["model"] is not None:
                p = separability_profile(rec["model"], data, metrics=profile_metrics, n_samples=n_samples, seed=seed)
                profiles.append(p.assign(schedule=named.label, seed=seed))
    if bar is not None:
        bar.close()
    settings = run_settings(data, model, width, seeds, config, profile_metrics, n_samples)
    return results_from_records(records, resolved, template, settings, profiles,
                                show_float=any(is_float_preset(e) for e in entries), keep_models=keep_models)


def entry_sensitivity(entries: Sequence[Entry], float_model: nn.Module, data: Data, n_samples: int, seed: int
                      ) -> pd.DataFrame | BaseException | None:
    """The float model's sensitivity by the metrics that ``"alloc:METRIC:B"`` entries name (None if none do), at
    ``ALLOC_BITS``; an error is returned, not raised, so that the other entries still run."""
    metrics = entry_metrics(entries)
    if not metrics:
        return None
    try:
        return sensitivity_metrics(float_model, data, metrics=metrics, bits=ALLOC_BITS, n_samples=n_samples,
                                   seed=seed)
    except Exception as err:  # noqa: BLE001 - recorded on the entries that need it
        log.warning("measuring %s on the float model failed: %s", ", ".join(metrics), err)
        return err


def _progress_bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="compare", unit="run")
