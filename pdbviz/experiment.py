"""The headline experiment in one place: ``compare`` (and the ``finetune`` fast path).

A comparison is a set of independent runs: per seed, one float model is
trained (``train_float``); per schedule entry and seed, a quantized model is
fine-tuned from it or trained from scratch (``run_schedule``). ``compare``
runs them one after another; ``pdbviz.sweep`` runs the same functions as tasks
on a Dask cluster.
"""

from __future__ import annotations

import copy
import logging
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pandas as pd
import torch
from torch import nn

from ._version import __version__
from .analysis import allocate, allocate_bits, parse_budget, predicted_loss, sensitivity_metrics, separability_profile
from .analysis.entries import ALLOC_BITS, ALLOC_PREFIX, alloc_budget, alloc_entry, entry_metrics
from .claims import accuracy_ci95
from .data import Data, as_data
from .inference import evaluate
from .models import build_model
from .quant import BitSchedule, memory_summary, quantize
from .quant.presets import PRESETS, NamedSchedule, resolve_preset
from .results import TABLE_COLUMNS, Results
from .train import fit

log = logging.getLogger(__name__)

#: The default comparison: the paper's questions in nine schedules.
DEFAULT_SCHEDULES = ("float", "1", "2", "4", "halving", "linear", "increasing", "alloc:2", "alloc:1.5")


def finetune(float_model: nn.Module, schedule, data, epochs: int = 3, lr: float = 1e-3, **fit_kwargs):
    """The fast path: quantize a trained float model and fine-tune it.

    Returns ``(quantized_model, history)``; ``float_model`` is not changed.

    Example:
        >>> from pdbviz import load_dataset, build_model
        >>> d = load_dataset("digits"); m = build_model("lenet", d.input_shape, 10)
        >>> q, h = finetune(m, "8-4-2-1", d, epochs=1, progress=False)
        >>> len(h)
        1
    """
    q = quantize(float_model, schedule)
    return q, fit(q, data, epochs=epochs, lr=lr, **fit_kwargs)


def resolve_schedule(entry, model: nn.Module, profile: pd.DataFrame | None = None,
                     sensitivity: pd.DataFrame | None = None) -> NamedSchedule:
    """Turn one entry of ``compare(schedules=...)`` into a ``NamedSchedule`` (entry, label, kind, schedule).

    Entries: the presets of ``pdbviz.quant.presets`` (``"float"``,
    ``"halving"``, ``"linear"``, ``"increasing"``); a one-line string
    (``"8-4-2-1"``, ``"4/4"``...); ``"alloc:B"``, separability-allocated from
    the float model's ``profile`` at budget B (non-increasing bits, the
    paper's shape; ``allocate_bits``): average bits (``"alloc:1.5"``), KiB
    (``"alloc:40KiB"``) or the memory of another entry (``"alloc:halving"``,
    at the memory of 8-4-2-1); ``"alloc:METRIC:B"``, allocated from the float
    model's ``sensitivity`` frame (``sensitivity_metrics`` with METRIC) at the
    same budgets or BOPs (``"alloc:hawq:2"``, ``"alloc:kl:40KiB"``,
    ``"alloc:sqnr:halving"``, ``"alloc:kl:2e6 BOPs"``): the least predicted
    loss (``predicted_loss``) over weight bits ``ALLOC_BITS``, inputs at 32
    bits, any shape (``analysis.allocate``); or a ``BitSchedule``.

    Example:
        >>> from pdbviz import build_model
        >>> resolve_schedule("halving", build_model("lenet")).label
        '8-4-2-1'
    """
    if isinstance(entry, str) and entry.strip().startswith(ALLOC_PREFIX):
        metric, text = alloc_entry(entry)
        budget, label = alloc_budget(text, model, metric)
        if metric is None:
            if profile is None:
                raise ValueError("an 'alloc:' schedule needs the float model's separability profile")
            schedule = allocate_bits(profile, model, budget)
        else:
            if sensitivity is None or metric not in set(sensitivity.metric):
                raise ValueError(f"{entry.strip()!r} needs the float model's {metric!r} sensitivity "
                                 f"(sensitivity_metrics(..., metrics=[{metric!r}]))")
            loss = predicted_loss(sensitivity, metric, w_bits=ALLOC_BITS, a_bits=(32,))
            schedule = allocate(model, loss, budget)
        return NamedSchedule(entry.strip(), label, "allocated", schedule)
    return resolve_preset(entry, model)


def check_schedules(schedules: Sequence, model: nn.Module) -> None:
    """Raise ValueError/TypeError for the first entry ``compare`` could not run on ``model``.

    Allocated entries are checked for their metric and budget only (their
    schedule needs the trained model's profile or sensitivity).

    Example:
        >>> from pdbviz import build_model
        >>> check_schedules(["alloc:nope:2"], build_model("lenet"))
        Traceback (most recent call last):
        ...
        ValueError: unknown metric 'nope' in schedule entry 'alloc:nope:2'; available: fisher, probe, ...
    """
    for entry in schedules:
        if isinstance(entry, str) and entry.strip().startswith(ALLOC_PREFIX):
            metric, text = alloc_entry(entry)
            parse_budget(alloc_budget(text, model, metric)[0])
        else:
            resolve_schedule(entry, model)


@dataclass(frozen=True)
class RunConfig:
    """How every run of a comparison trains: the float model, then each schedule."""

    epochs: int = 20
    finetune: bool = True
    finetune_epochs: int = 3
    lr: float = 3e-3
    finetune_lr: float = 1e-3
    batch_size: int = 64
    device: str = "auto"
    progress: bool = False


def make_model(model, data: Data, seed: int, width: float = 1.0) -> nn.Module:
    """A fresh (untrained) model for ``seed``: a zoo name is built, a module is deep-copied."""
    if isinstance(model, str):
        if data.num_classes is None:
            raise ValueError(f"the data does not say how many classes it has; give classes= to as_data to build a "
                             f"{model!r}")
        return build_model(model, data.input_shape, data.num_classes, width=width, seed=seed)
    if isinstance(model, nn.Module):
        return copy.deepcopy(model)
    raise TypeError(f"model must be a model name or an nn.Module, got {type(model).__name__}")


def _record(label: str, seed: int, model: nn.Module, history, seconds: float, data: Data) -> dict:
    frame = history.to_frame()
    frame.insert(0, "seed", seed)
    frame.insert(0, "schedule", label)
    acc = evaluate(model, data)["accuracy"]
    return {"run": {"schedule": label, "seed": seed, "test_acc": 100 * acc, "train_seconds": seconds, "error": ""},
            "history": frame, "model": model}


def _failed(label: str, seed: int, err: BaseException) -> dict:
    log.warning("schedule %s, seed %d failed: %s", label, seed, err)
    return {"run": {"schedule": label, "seed": seed, "test_acc": float("nan"), "train_seconds": float("nan"),
                    "error": f"{type(err).__name__}: {err}"}, "history": None, "model": None}


def train_float(model, data: Data, seed: int, config: RunConfig, width: float = 1.0) -> dict:
    """Train the float model of one seed; returns its run record, history and model."""
    m = make_model(model, data, seed, width)
    t0 = time.perf_counter()
    h = fit(m, data, epochs=config.epochs, lr=config.lr, seed=seed, batch_size=config.batch_size,
            device=config.device, progress=config.progress)
    return _record(PRESETS["float"].label, seed, m, h, time.perf_counter() - t0, data)


def run_schedule(named: NamedSchedule, seed: int, data: Data, config: RunConfig, float_model: nn.Module | None,
                 model=None, width: float = 1.0) -> dict:
    """Quantize and train one schedule for one seed: fine-tuned from ``float_model``, or from scratch.

    A failure is returned as a record with its error, never raised.
    """
    try:
        t0 = time.perf_counter()
        kw = dict(seed=seed, batch_size=config.batch_size, device=config.device, progress=config.progress)
        if config.finetune:
            q, h = finetune(float_model, named.schedule, data, epochs=config.finetune_epochs, lr=config.finetune_lr,
                            **kw)
        else:
            q = quantize(make_model(model, data, seed, width), named.schedule)
            h = fit(q, data, epochs=config.epochs, lr=config.lr, **kw)
        return _record(named.label, seed, q, h, time.perf_counter() - t0, data)
    except Exception as err:  # noqa: BLE001 - one failing schedule must not lose the others
        return _failed(named.label, seed, err)


def _resolve_entries(schedules: Sequence, template: nn.Module, profile: pd.DataFrame,
                     sensitivity: pd.DataFrame | BaseException | None = None) -> list[tuple[NamedSchedule, str]]:
    """Each entry resolved, or a placeholder with its error (the others go on). ``sensitivity`` may be the error
    that measuring it raised: the entries that need it fail with that error."""
    out = []
    for entry in schedules:
        try:
            if isinstance(sensitivity, BaseException) and entry_metrics([entry]):
                raise ValueError(f"measuring the sensitivity for {entry.strip()!r} failed: "
                                 f"{type(sensitivity).__name__}: {sensitivity}")
            frame = None if isinstance(sensitivity, BaseException) else sensitivity
            out.append((resolve_schedule(entry, template, profile, frame), ""))
        except (ValueError, TypeError) as err:
            label = entry if isinstance(entry, str) else repr(entry)
            log.warning("schedule %s failed: %s", label, err)
            out.append((NamedSchedule(label, label, "custom", None), f"{type(err).__name__}: {err}"))
    return out


def compare(data="digits", model: str | nn.Module = "lenet", schedules: Sequence = DEFAULT_SCHEDULES,
            epochs: int = 20, seeds: Sequence[int] = (0,), finetune: bool = True, finetune_epochs: int = 3,
            lr: float = 3e-3, finetune_lr: float = 1e-3, batch_size: int = 64, width: float = 1.0,
            profile_metrics: Sequence[str] = ("fisher", "probe"), n_samples: int = 1000, device="auto",
            progress: bool = True, keep_models: bool = True) -> Results:
    """Train the float model once per seed, then every schedule, and tabulate.

    Args:
        data: a ``Data`` or a dataset name (default ``"digits"``).
        model: a zoo model name, or an (untrained) ``nn.Module`` copied for each seed.
        schedules: entries as in ``resolve_schedule`` (``"alloc:METRIC:B"`` entries measure METRIC on the
            first seed's float model, on ``n_samples`` test samples); the default answers the
            paper's questions: float; uniform 1, 2, 4 bits; 8-4-2-1 (halving per
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

    A schedule that fails is recorded with its error; the others are kept.

    Example:
        >>> r = compare("digits", schedules=["float", "2"], epochs=1, finetune_epochs=1, progress=False)
        >>> r.table.schedule.tolist()
        ['float-32', 'uniform 2-bit']
    """
    data = as_data(data)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed")
    if isinstance(schedules, (str, BitSchedule)):
        schedules = [schedules]
    schedules = list(schedules)
    if not schedules:
        raise ValueError("schedules is empty")
    config = RunConfig(epochs, finetune, finetune_epochs, lr, finetune_lr, batch_size, device, progress)
    template = make_model(model, data, seeds[0], width)
    bar = _progress_bar(progress, len(seeds) * (1 + sum(not _is_float(s) for s in schedules)))
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
    sensitivity = _entry_sensitivity(schedules, float_models[seeds[0]], data, n_samples, seeds[0])
    entries = _resolve_entries(schedules, template, base_profile, sensitivity)
    for named, error in entries:
        if error or named.schedule is None:
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
    return results_from_records(records, entries, schedules, template, settings, profiles, keep_models)


def _entry_sensitivity(schedules: Sequence, float_model: nn.Module, data: Data, n_samples: int, seed: int
                       ) -> pd.DataFrame | BaseException | None:
    """The float model's sensitivity by the metrics that ``"alloc:METRIC:B"`` entries name (None if none do), at
    ``ALLOC_BITS``; an error is returned, not raised, so that the other entries still run."""
    metrics = entry_metrics(schedules)
    if not metrics:
        return None
    try:
        return sensitivity_metrics(float_model, data, metrics=metrics, bits=ALLOC_BITS, n_samples=n_samples,
                                   seed=seed)
    except Exception as err:  # noqa: BLE001 - recorded on the entries that need it
        log.warning("measuring %s on the float model failed: %s", ", ".join(metrics), err)
        return err


def run_settings(data: Data, model, width: float, seeds: Sequence[int], config: RunConfig,
                 profile_metrics: Sequence[str], n_samples: int) -> dict:
    """The settings a comparison records in ``Results.config`` (before versions and schedules are added)."""
    settings = {"dataset": data.name, "model": model if isinstance(model, str) else type(model).__name__,
                "width": width, "seeds": list(seeds), **asdict(config), "profile_metrics": list(profile_metrics),
                "n_samples": n_samples, "n_test": len(data.test) if data.test is not None else None}
    settings.pop("progress")
    return settings


def results_from_records(records: Sequence[dict], entries, schedules: Sequence, template: nn.Module,
                         settings: dict, profiles: Sequence[pd.DataFrame], keep_models: bool = True) -> Results:
    """Tabulate run records (float runs first, then each entry's runs, as ``compare`` makes them) into ``Results``.

    ``entries`` are the resolved ``(NamedSchedule, error)`` pairs; ``profiles``
    the separability profiles, each with ``schedule`` and ``seed`` columns. The
    float runs are shown only when ``schedules`` holds ``"float"``.
    """
    float_label = PRESETS["float"].label
    shown = [r for r in records if r["run"]["schedule"] != float_label or any(_is_float(s) for s in schedules)]
    runs = pd.DataFrame([r["run"] for r in shown], columns=["schedule", "seed", "test_acc", "train_seconds", "error"])
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


def _is_float(entry) -> bool:
    return isinstance(entry, str) and entry.strip() == "float"


def _progress_bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="compare", unit="run")


def _config(settings: dict, entries, template: nn.Module) -> dict:
    return {**settings, "layers": BitSchedule.uniform(template, 32).layers,
            "pdbviz_version": __version__, "torch_version": torch.__version__, "python": platform.python_version(),
            "entries": {n.label: n.entry for n, _ in entries},
            "schedule_strings": {n.label: (n.schedule.to_string(template) if n.schedule is not None else n.kind)
                                 for n, _ in entries}}


def _ci95(accs: list[float], n_test: int | None) -> float:
    """Half-width of the 95% interval of a mean accuracy (points): seed spread and the test set's sampling error."""
    return accuracy_ci95(accs, n_test)


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
        if mem is None and named.kind == "float" and not error:
            mem = memory_summary(template)
        rows.append({
            "schedule": named.label, "kind": named.kind, "w_bits": "-".join(map(str, w)),
            "a_bits": "-".join(map(str, a)),
            "kib": mem.quantized_weight_kib if mem else float("nan"),
            "avg_bits": mem.avg_bits if mem else float("nan"),
            "compression": mem.compression if mem else float("nan"),
            "acc_mean": statistics.mean(accs) if accs else float("nan"),
            "acc_std": statistics.stdev(accs) if len(accs) > 1 else float("nan"),
            "acc_ci95": _ci95(accs, n_test),
            "n_seeds": len(accs), "train_seconds": statistics.mean(ok.train_seconds) if accs else float("nan"),
            "error": "; ".join(errors),
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)
