"""``metric_study``: the protocol of ``pdbviz.study`` (float model, metrics, allocations, fine-tuning), run."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._checks import NON_NEGATIVE_INT, POSITIVE_INT, POSITIVE_REAL, Integer, validate, validate_params
from ..analysis import pareto_front, predicted_loss, sensitivity_metrics
from ..analysis.interactions import allocate_with_interactions, interactions
from ..analysis.metrics import check_metric_names
from ..claims import accuracy_ci95
from ..data import as_data
from ..experiment import RunConfig, make_model, run_schedule, train_float
from ..quant import BitSchedule, memory_summary
from ..quant.presets import NamedSchedule
from ..quant.quantizers import check_bits
from .correlation import rank_correlation
from .interaction import interaction_summary
from .result import RUN_COLUMNS, SUMMARY_COLUMNS, MetricStudy

#: the metrics ``metric_study`` compares by default: fast ones of each family.
DEFAULT_METRICS = ("fisher", "hawq", "output_error", "sqnr", "kl", "cka")
#: the default budgets, in average weight bits.
DEFAULT_BUDGETS = (1.5, 2.0, 3.0, 4.0)


@validate_params({"epochs": POSITIVE_INT, "finetune_epochs": POSITIVE_INT, "n_samples": Integer(2),
                  "n_boot": NON_NEGATIVE_INT, "lr": POSITIVE_REAL, "finetune_lr": POSITIVE_REAL,
                  "batch_size": POSITIVE_INT, "width": POSITIVE_REAL})
def metric_study(data="digits", model="lenet", metrics: Sequence[str] = DEFAULT_METRICS,
                 budgets: Sequence[float] = DEFAULT_BUDGETS, seeds: Sequence[int] = (0, 1, 2), epochs: int = 10,
                 finetune_epochs: int = 3, n_samples: int = 256, w_bits: Sequence[int] = tuple(range(1, 9)),
                 monotone: bool = False, uniform: bool = True, lr: float = 3e-3, finetune_lr: float = 1e-3,
                 batch_size: int = 64, width: float = 1.0, n_boot: int = 1000, device="auto",
                 progress: bool = True, interaction_aware: bool = False) -> MetricStudy:
    """Which sensitivity metric predicts? Allocate with each metric at each budget, fine-tune, rank-correlate.

    The protocol and the statistics are in the docstring of ``pdbviz.study``: per seed a
    float model, each metric measured on it, one allocation per metric and
    budget from the exact front, every allocation fine-tuned; per metric,
    Spearman's rho between the front's predicted loss and the measured
    accuracy drop (higher is better), and the accuracy at each budget.

    Args:
        data: a ``Data`` or a dataset name.
        model: a zoo model name, or an (untrained) ``nn.Module`` copied for each seed.
        metrics: names from ``pdbviz.analysis.METRICS`` (``metric_info()``).
        budgets: average weight bits, each at least ``min(w_bits)``.
        seeds: one float model, measurement and set of fine-tuned runs per seed.
        epochs: float training epochs.
        finetune_epochs: fine-tuning epochs of every schedule (at ``finetune_lr``).
        n_samples: samples of the test split the metrics see (stratified, seeded).
        w_bits: the weight bit-widths the allocator may choose (inputs stay float).
        monotone: allocations whose weight bits never increase with depth.
        uniform: add the uniform ``k``-bit schedule with the largest ``k`` within each budget.
        lr, batch_size, width, device, progress: as in ``compare``.
        n_boot: bootstrap resamples of the correlation's interval (0: none).
        interaction_aware: also measure, per seed, the pairwise interactions
            of the float model's layers at 2 bits (``analysis.interactions``)
            and set the interaction-aware allocation of the first metric
            against its additive one at every budget (``study.interaction``:
            ``MetricStudy.interaction``; the aware runs are method
            ``"METRIC+interactions"``, family ``"interaction"``). Off by
            default: it measures and fine-tunes more.

    Returns:
        A ``MetricStudy``.

    Example:
        >>> s = metric_study("digits", metrics=["hawq", "sqnr"], budgets=[2, 4], seeds=[0], epochs=1,
        ...                  finetune_epochs=1, n_samples=64, n_boot=0, progress=False)
        >>> s.correlation.metric.tolist(), sorted(s.summary.method.unique())
        (['hawq', 'sqnr'], ['float', 'hawq', 'sqnr', 'uniform'])
    """
    data = as_data(data)
    metrics = check_metric_names(metrics)
    budgets = _check_budgets(budgets, w_bits)
    w_bits = sorted({check_bits(b, "w_bits", allow_float=False) for b in w_bits})
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        seeds = [seeds]
    seeds = [validate("seeds", s, NON_NEGATIVE_INT) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must hold at least one seed, each once, got {seeds!r}")
    if data.test is None:
        raise ValueError("data has no test split; metric_study measures test accuracy")
    config = RunConfig(epochs, True, finetune_epochs, lr, finetune_lr, batch_size, device, False)
    template = make_model(model, data, seeds[0], width)
    uniform_k = {b: max(k for k in w_bits if k <= b) for b in budgets} if uniform else {}
    bar = _bar(progress, len(seeds))
    rows, frames, trained, pairs, verdicts = [], [], {}, [], {}
    for seed in seeds:
        flt = train_float(model, data, seed, config, width)
        float_model, float_acc = flt["model"], flt["run"]["test_acc"]
        rows.append(_run_row("float", "float", math.nan, seed, BitSchedule.uniform(template, 32), template,
                             math.nan, float_acc, flt["run"]))
        frame = sensitivity_metrics(float_model, data, metrics=metrics, bits=_measured_bits(w_bits),
                                    n_samples=n_samples, seed=seed, batch_size=max(batch_size, 128))
        frames.append(frame.assign(seed=seed))
        plans, additive = [], {}
        for metric in metrics:
            front = pareto_front(float_model, predicted_loss(frame, metric, w_bits=w_bits), "memory",
                                 monotone=monotone)
            for b in budgets:
                i = front.index(b)
                plans.append((metric, "metric", b, front.schedule(i), float(front.table.loss.iloc[i])))
                additive.setdefault(b, front.schedule(i))
        if interaction_aware:
            inter = interactions(float_model, data, bits=2, n_samples=n_samples, seed=seed,
                                 batch_size=max(batch_size, 128))
            verdicts[str(seed)] = inter.verdict
            loss = predicted_loss(frame, metrics[0], w_bits=w_bits)
            for b in budgets:
                aware = allocate_with_interactions(float_model, loss, inter, b, monotone=monotone)
                plans.append((f"{metrics[0]}+interactions", "interaction", b, aware, math.nan))
                pairs.append({"metric": metrics[0], "budget": b, "seed": seed, "additive": additive[b],
                              "aware": aware})
        for b, k in uniform_k.items():
            plans.append(("uniform", "uniform", b, BitSchedule.uniform(template, k), math.nan))
        for method, family, b, schedule, loss in plans:
            key = (schedule.to_string(template), seed)
            if key not in trained:
                named = NamedSchedule(key[0], key[0], "allocated" if family == "metric" else family, schedule)
                trained[key] = run_schedule(named, seed, data, config, float_model, model, width)["run"]
            rows.append(_run_row(method, family, b, seed, schedule, template, loss, float_acc, trained[key]))
        for pair in (p for p in pairs if p["seed"] == seed):
            for side in ("additive", "aware"):
                text = pair[side].to_string(template)
                if (text, seed) not in trained:  # the additive choice of the first metric is trained above
                    named = NamedSchedule(text, text, "allocated", pair[side])
                    trained[(text, seed)] = run_schedule(named, seed, data, config, float_model, model, width)["run"]
                pair[f"correct_{side}"] = trained[(text, seed)].get("correct", "")
                pair[side] = "-".join(map(str, pair[side].w_bits))
        if bar is not None:
            bar.set_postfix_str(f"seed {seed}: {len({k for k in trained if k[1] == seed})} schedules")
            bar.update(1)
    if bar is not None:
        bar.close()
    runs = pd.DataFrame(rows, columns=RUN_COLUMNS)
    n_test = len(data.test)
    settings = {"dataset": data.name, "model": model if isinstance(model, str) else type(model).__name__,
                "width": width, "metrics": list(metrics), "budgets": budgets, "seeds": seeds, "epochs": epochs,
                "finetune_epochs": finetune_epochs, "lr": lr, "finetune_lr": finetune_lr, "batch_size": batch_size,
                "n_samples": n_samples, "w_bits": w_bits, "monotone": monotone, "n_boot": n_boot, "n_test": n_test,
                "layers": BitSchedule.uniform(template, 32).layers,
                "uniform": {f"{b:g}": k for b, k in uniform_k.items()}, "interaction_aware": interaction_aware}
    if interaction_aware:
        settings["interaction_verdicts"] = verdicts
    return MetricStudy(runs=runs, summary=_summary(runs, n_test),
                       correlation=rank_correlation(runs, n_test, n_boot, seed=seeds[0]),
                       sensitivity=pd.concat(frames, ignore_index=True), config=settings,
                       interaction=interaction_summary(pairs))


def _check_budgets(budgets, w_bits) -> list[float]:
    if isinstance(budgets, (int, float, np.number)) and not isinstance(budgets, bool):
        budgets = [budgets]
    out = []
    for b in budgets:
        if isinstance(b, bool) or not isinstance(b, (int, float, np.number)) or not math.isfinite(b):
            raise ValueError(f"budgets must be average weight bits (numbers such as 1.5, 2, 3, 4), got {b!r}")
        out.append(float(b))
    if not out:
        raise ValueError("budgets is empty; give average weight bits such as (1.5, 2, 3, 4)")
    low = min(int(w) for w in w_bits) if len(w_bits) else 1
    bad = [b for b in out if b < low or b > 32]
    if bad:
        raise ValueError(f"budgets must lie between {low} (the smallest of w_bits) and 32 average bits, got {bad}")
    return sorted(set(out))


def _measured_bits(w_bits: Sequence[int]) -> tuple[int, ...]:
    """The bit-widths the per-bit metrics measure: 1, 2, 4, 8 within the choices' range (the rest interpolated)."""
    inside = [b for b in (1, 2, 4, 8) if min(w_bits) <= b <= max(w_bits)]
    return tuple(sorted(set(inside) | {min(w_bits), max(w_bits)}))


def _run_row(method, family, budget, seed, schedule, template, loss, float_acc, run) -> dict:
    mem = memory_summary(template, schedule)
    return {"method": method, "family": family, "budget": budget, "seed": seed,
            "w_bits": "-".join(map(str, schedule.w_bits)),
            "avg_bits": mem.avg_bits, "kib": mem.quantized_weight_kib, "predicted_loss": loss, "float_acc": float_acc,
            "test_acc": run["test_acc"], "acc_drop": float_acc - run["test_acc"],
            "train_seconds": run["train_seconds"], "error": run["error"], "correct": run.get("correct", "")}


def _summary(runs: pd.DataFrame, n_test: int) -> pd.DataFrame:
    rows = []
    for (method, budget), df in runs.groupby(["method", "budget"], sort=False, dropna=False):
        ok = df[df.error == ""]
        accs = ok.test_acc.astype(float).tolist()
        rows.append({"method": method, "family": df.family.iloc[0], "budget": budget, "w_bits": df.w_bits.iloc[0],
                     "avg_bits": df.avg_bits.mean(), "kib": df.kib.mean(), "predicted_loss": df.predicted_loss.mean(),
                     "acc_mean": float(np.mean(accs)) if accs else math.nan,
                     "acc_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else math.nan,
                     "acc_ci95": accuracy_ci95(accs, n_test, correct=ok.correct.tolist()), "drop_mean": ok.acc_drop.mean() if accs else math.nan,
                     "n_seeds": len(accs), "n_schedules": df.w_bits.nunique()})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    methods = list(dict.fromkeys(["float", *runs.method[runs.family == "metric"], "uniform"]))
    out["_m"] = out.method.map({m: i for i, m in enumerate(methods)})
    return out.sort_values(["_m", "budget"], kind="stable").drop(columns="_m").reset_index(drop=True)


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="metric study", unit="seed")
