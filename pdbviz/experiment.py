"""The headline experiment in one place: ``compare`` (and the ``finetune`` fast path)."""

from __future__ import annotations

import copy
import logging
import platform
import statistics
import time
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from .analysis import allocate_bits, separability_profile
from ._version import __version__
from .data import Data, load_dataset
from .models import build_model
from .quant import BitSchedule, memory_summary, quantize
from .results import TABLE_COLUMNS, Results
from .train import evaluate, fit

log = logging.getLogger(__name__)

#: The default comparison: the paper's questions in eight schedules.
DEFAULT_SCHEDULES = ("float", "1", "2", "4", "8-4-2-1", "linear", "increasing", "alloc:2", "alloc:1.5")


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


def resolve_schedule(spec, model: nn.Module, profile: pd.DataFrame | None = None) -> tuple[str, str, BitSchedule | None]:
    """Turn one entry of ``compare(schedules=...)`` into ``(label, kind, schedule)``.

    Entries: ``"float"``; a one-line string (``"8-4-2-1"``, ``"4/4"``...);
    ``"linear"`` (8 down to 1, linearly), ``"halving"`` (8-4-2-1...),
    ``"increasing"`` (the mirror of halving); ``"alloc:B"`` (separability-allocated
    at budget B: average bits, or ``"alloc:40KiB"``); or a ``BitSchedule``.
    """
    if isinstance(spec, BitSchedule):
        return spec.to_string(), "custom", spec
    if not isinstance(spec, str):
        raise TypeError(f"each schedule must be a string or a BitSchedule, got {type(spec).__name__}")
    text = spec.strip()
    groups = getattr(model, "layer_groups", None)
    if text == "float":
        return "float", "float", None
    if text == "linear":
        return "linear 8→1", "decreasing", BitSchedule.decreasing(model, 8, 1, kind="linear")
    if text == "halving":
        return "halving 8→1", "decreasing", BitSchedule.decreasing(model, 8, 1, groups=groups)
    if text == "increasing":
        return "increasing 1→8", "increasing", BitSchedule.increasing(model, 1, 8, groups=groups)
    if text.startswith("alloc:"):
        if profile is None:
            raise ValueError("an 'alloc:' schedule needs the float model's separability profile")
        budget = text[len("alloc:"):].strip()
        return f"alloc @{budget}", "allocated", allocate_bits(profile, model, _alloc_budget(budget))
    sched = BitSchedule.from_string(text, model)
    kind = "uniform" if len(set(sched.w_bits)) == 1 else (
        "decreasing" if all(a >= b for a, b in zip(sched.w_bits, sched.w_bits[1:])) else
        "increasing" if all(a <= b for a, b in zip(sched.w_bits, sched.w_bits[1:])) else "custom")
    return text, kind, sched


def check_schedules(schedules: Sequence, model: nn.Module) -> None:
    """Raise ValueError/TypeError for the first entry ``compare`` could not run on ``model``.

    Separability-allocated entries are checked for their budget only (their
    schedule needs the trained model's profile).
    """
    for spec in schedules:
        if isinstance(spec, str) and spec.strip().startswith("alloc:"):
            from .analysis import parse_budget

            parse_budget(_alloc_budget(spec.strip()[len("alloc:"):].strip()))
        else:
            resolve_schedule(spec, model)


def _alloc_budget(text: str) -> float | str:
    """The budget of an ``"alloc:B"`` entry: a number of average bits, or the text (``"40KiB"``)."""
    try:
        return float(text)
    except ValueError:
        return text


def _data(data) -> Data:
    if isinstance(data, str):
        return load_dataset(data)
    if isinstance(data, Data):
        return data
    raise TypeError(f"data must be a dataset name or a pdbviz Data object, got {type(data).__name__}")


def compare(data="digits", model: str | nn.Module = "lenet", schedules: Sequence = DEFAULT_SCHEDULES,
            epochs: int = 20, seeds: Sequence[int] = (0,), finetune: bool = True, finetune_epochs: int = 3,
            lr: float = 3e-3, finetune_lr: float = 1e-3, batch_size: int = 64, width: float = 1.0,
            profile_metrics: Sequence[str] = ("fisher", "probe"), n_samples: int = 1000, device="auto",
            progress: bool = True, keep_models: bool = True) -> Results:
    """Train the float model once per seed, then every schedule, and tabulate.

    Args:
        data: a ``Data`` or a dataset name (default ``"digits"``).
        model: a zoo model name, or an (untrained) ``nn.Module`` copied for each seed.
        schedules: entries as in ``resolve_schedule``; the default answers the
            paper's questions: float; uniform 1, 2, 4 bits; "8-4-2-1"; a linear
            decrease; the increasing control; separability-allocated at the
            memory of uniform 2-bit ("alloc:2") and 25% less ("alloc:1.5").
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
        ['float', '2']
    """
    data = _data(data)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed")
    if isinstance(schedules, (str, BitSchedule)):
        schedules = [schedules]
    schedules = list(schedules)
    if not schedules:
        raise ValueError("schedules is empty")

    def make_model(seed):
        if isinstance(model, str):
            return build_model(model, data.input_shape, data.num_classes, width=width, seed=seed)
        if isinstance(model, nn.Module):
            return copy.deepcopy(model)
        raise TypeError(f"model must be a model name or an nn.Module, got {type(model).__name__}")

    template = make_model(seeds[0])
    fit_kw = dict(batch_size=batch_size, device=device, progress=progress)
    overall = None
    if progress:
        from tqdm.auto import tqdm

        n_runs = len(seeds) * (1 + sum(not (isinstance(s, str) and s.strip() == "float") for s in schedules))
        overall = tqdm(total=n_runs, desc="compare", unit="run")
    float_models, runs, hist, profiles, models = {}, [], [], [], {}

    def record(label, seed, m, h, seconds):
        acc = evaluate(m, data)["accuracy"]
        runs.append({"schedule": label, "seed": seed, "test_acc": 100 * acc, "train_seconds": seconds, "error": ""})
        frame = h.to_frame()
        frame.insert(0, "seed", seed)
        frame.insert(0, "schedule", label)
        hist.append(frame)
        if keep_models:
            models[(label, seed)] = m
        if overall is not None:
            overall.set_postfix_str(f"{label} (seed {seed}): {100 * acc:.2f}%")

    for seed in seeds:
        m = make_model(seed)
        t0 = time.perf_counter()
        h = fit(m, data, epochs=epochs, lr=lr, seed=seed, **fit_kw)
        float_models[seed] = m
        if any(isinstance(s, str) and s.strip() == "float" for s in schedules):
            record("float", seed, m, h, time.perf_counter() - t0)
        if overall is not None:
            overall.update(1)
    base_profile = separability_profile(float_models[seeds[0]], data, metrics=profile_metrics, n_samples=n_samples,
                                        seed=seeds[0])
    profiles.append(base_profile.assign(schedule="float", seed=seeds[0]))

    entries = []  # (label, kind, schedule or None, error), in the order given
    for spec in schedules:
        try:
            label, kind, sched = resolve_schedule(spec, template, base_profile)
        except (ValueError, TypeError) as err:
            label = spec if isinstance(spec, str) else repr(spec)
            entries.append((label, "custom", None, f"{type(err).__name__}: {err}"))
            log.warning("schedule %s failed: %s", label, err)
            continue
        entries.append((label, kind, sched, ""))
        if sched is None:
            continue
        for seed in seeds:
            try:
                t0 = time.perf_counter()
                if finetune:
                    q = quantize(float_models[seed], sched)
                    h = fit(q, data, epochs=finetune_epochs, lr=finetune_lr, seed=seed, **fit_kw)
                else:
                    q = quantize(make_model(seed), sched)
                    h = fit(q, data, epochs=epochs, lr=lr, seed=seed, **fit_kw)
                record(label, seed, q, h, time.perf_counter() - t0)
                if seed == seeds[0]:
                    p = separability_profile(q, data, metrics=profile_metrics, n_samples=n_samples, seed=seed)
                    profiles.append(p.assign(schedule=label, seed=seed))
            except Exception as err:  # noqa: BLE001 - one failing schedule must not lose the others
                log.warning("schedule %s, seed %d failed: %s", label, seed, err)
                runs.append({"schedule": label, "seed": seed, "test_acc": float("nan"), "train_seconds": float("nan"),
                             "error": f"{type(err).__name__}: {err}"})
            if overall is not None:
                overall.update(1)
    if overall is not None:
        overall.close()
    runs_df = pd.DataFrame(runs, columns=["schedule", "seed", "test_acc", "train_seconds", "error"])
    table = _table(entries, runs_df, template)
    config = {
        "dataset": data.name, "model": model if isinstance(model, str) else type(model).__name__,
        "width": width, "seeds": seeds, "epochs": epochs, "finetune": finetune, "finetune_epochs": finetune_epochs,
        "lr": lr, "finetune_lr": finetune_lr, "batch_size": batch_size, "profile_metrics": list(profile_metrics),
        "n_samples": n_samples, "layers": list(BitSchedule.uniform(template, 32).layers),
        "pdbviz_version": __version__, "torch_version": torch.__version__, "python": platform.python_version(),
        "schedule_strings": {e[0]: (e[2].to_string() if e[2] is not None else e[1]) for e in entries},
    }
    return Results(
        table=table, runs=runs_df,
        history=pd.concat(hist, ignore_index=True) if hist else pd.DataFrame(),
        profiles=pd.concat(profiles, ignore_index=True)[["schedule", "seed", *base_profile.columns]],
        config=config, schedules={e[0]: (e[2].to_dict() if e[2] is not None else None) for e in entries},
        models=models,
    )


def _table(entries, runs, template):
    n_layers = len(BitSchedule.uniform(template, 32))
    rows = []
    for label, kind, sched, error in entries:
        r = runs[runs.schedule == label]
        ok = r[r.error == ""]
        accs = ok.test_acc.tolist()
        errors = [error] if error else sorted(set(r.error[r.error != ""]))
        if error or (kind != "float" and sched is None):
            mem = None
        else:
            mem = memory_summary(template, sched)
        w = sched.w_bits if sched is not None else ([32] * n_layers if not error else [])
        a = sched.a_bits if sched is not None else ([32] * n_layers if not error else [])
        rows.append({
            "schedule": label, "kind": kind, "w_bits": "-".join(map(str, w)), "a_bits": "-".join(map(str, a)),
            "kib": mem.quantized_weight_kib if mem else float("nan"),
            "avg_bits": mem.avg_bits if mem else float("nan"),
            "compression": mem.compression if mem else float("nan"),
            "acc_mean": statistics.mean(accs) if accs else float("nan"),
            "acc_std": statistics.stdev(accs) if len(accs) > 1 else float("nan"),
            "n_seeds": len(accs), "train_seconds": statistics.mean(ok.train_seconds) if accs else float("nan"),
            "error": "; ".join(errors),
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)

