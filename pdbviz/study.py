"""Which sensitivity metric predicts? Allocate with each metric, fine-tune every allocation, rank-correlate.

The protocol of ``metric_study``, per seed:

1. train the float model (``experiment.train_float``, as ``compare`` does);
2. measure every metric on it (``analysis.sensitivity_metrics``) and turn
   each into the allocator's table (``analysis.predicted_loss``);
3. at every budget ``B`` (average weight bits), take from each metric's
   exact front (``analysis.pareto_front``) the point with the least predicted
   loss whose average bits are at most ``B``; add the uniform ``k``-bit
   schedule with the largest ``k <= B`` as a reference;
4. fine-tune every schedule from the float model of the seed
   (``experiment.run_schedule``; a schedule that two metrics both choose is
   trained once per seed) and measure its test accuracy.

Per metric, the predicted loss of each allocation is then compared with its
measured accuracy drop, ``drop = acc(float, seed) - acc(schedule, seed)``, by
Spearman's rank correlation (Spearman 1904): the Pearson correlation of the
ranks, ties given their average rank,

    rho = cov(rank(L), rank(D)) / (std(rank(L)) std(rank(D)))

over all the metric's runs (every budget and seed). A metric that predicts
well gives ``rho`` near +1: the allocations it expects to lose more do lose
more accuracy. The interval is a bootstrap (Efron & Tibshirani 1993): seeds
are drawn with replacement and each accuracy is redrawn from the binomial
distribution of a test set of its size (the two sources of
``pdbviz.claims``), and the 2.5 and 97.5 percentiles of ``rho`` are reported.
The per-seed correlations (mean and standard deviation) are reported beside
it. Since the predicted loss falls as the budget grows, ``rho`` rewards first
getting the order of the budgets right; the accuracy at each budget (mean over
seeds, 95% interval as in ``pdbviz.claims``) says which metric allocates best.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import atomic_write, json_default, read_saved_folder
from .analysis import pareto_front, predicted_loss, sensitivity_metrics
from .analysis.metrics import check_metric_names
from .claims import accuracy_ci95
from .data import as_data
from .experiment import RunConfig, make_model, run_schedule, train_float
from .quant import BitSchedule, memory_summary
from .quant.presets import NamedSchedule
from .quant.quantizers import check_bits

#: the metrics ``metric_study`` compares by default: fast ones of each family.
DEFAULT_METRICS = ("fisher", "hawq", "output_error", "sqnr", "kl", "cka")
#: the default budgets, in average weight bits.
DEFAULT_BUDGETS = (1.5, 2.0, 3.0, 4.0)
#: version of the study.json layout that ``MetricStudy.save`` writes and ``MetricStudy.load`` reads.
STUDY_FORMAT_VERSION = 1
#: columns of ``MetricStudy.runs``.
RUN_COLUMNS = ["method", "kind", "budget", "seed", "w_bits", "avg_bits", "kib", "predicted_loss", "float_acc",
               "test_acc", "acc_drop", "train_seconds", "error"]
#: columns of ``MetricStudy.summary``.
SUMMARY_COLUMNS = ["method", "kind", "budget", "w_bits", "avg_bits", "kib", "predicted_loss", "acc_mean", "acc_std",
                   "acc_ci95", "drop_mean", "n_seeds", "n_schedules"]
#: columns of ``MetricStudy.correlation``.
CORRELATION_COLUMNS = ["metric", "spearman", "ci_low", "ci_high", "seed_mean", "seed_std", "n_runs", "n_seeds"]
_FILES = {"runs": "study_runs.csv", "summary": "study_summary.csv", "correlation": "study_correlation.csv",
          "sensitivity": "study_sensitivity.csv"}


def spearman(x, y) -> float:
    """Spearman's rank correlation of two equally long sequences: Pearson's on average ranks.

    NaN when either sequence has fewer than two distinct values (no ranking to compare).

    Example:
        >>> round(spearman([0.1, 0.5, 0.2, 0.9], [1.0, 3.0, 2.0, 2.5]), 6)
        0.8
    """
    x = pd.Series(np.asarray(x, dtype=float)).rank().to_numpy()
    y = pd.Series(np.asarray(y, dtype=float)).rank().to_numpy()
    if len(x) != len(y):
        raise ValueError(f"x and y must have one length, got {len(x)} and {len(y)}")
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def rank_correlation(runs: pd.DataFrame, n_test: int | None = None, n_boot: int = 1000, seed: int = 0,
                     level: float = 0.95) -> pd.DataFrame:
    """Per metric: Spearman's rho between predicted loss and measured accuracy drop, with its interval.

    Args:
        runs: ``MetricStudy.runs`` (rows of ``kind == "metric"`` are used:
            ``method``, ``seed``, ``predicted_loss``, ``test_acc``, ``float_acc``).
        n_test: test-set size, for the binomial part of the bootstrap (None: seeds only).
        n_boot: bootstrap resamples (0: no interval).
        seed: seed of the bootstrap.
        level: coverage of the percentile interval.

    Returns:
        One row per metric (``CORRELATION_COLUMNS``): ``spearman`` over all
        the metric's runs, ``ci_low``/``ci_high`` (bootstrap percentiles),
        ``seed_mean``/``seed_std`` of the per-seed correlations, ``n_runs``,
        ``n_seeds``. Higher is better (see the module docstring).

    Example:
        >>> runs = pd.DataFrame({"method": "m", "kind": "metric", "seed": [0, 0, 0, 1, 1, 1],
        ...                      "predicted_loss": [3.0, 2.0, 1.0, 3.1, 2.2, 0.9], "float_acc": 99.0,
        ...                      "test_acc": [90.0, 95.0, 98.0, 91.0, 96.0, 97.0], "error": ""})
        >>> rank_correlation(runs, n_boot=0)[["metric", "spearman", "seed_mean"]].round(3).values.tolist()
        [['m', 0.829, 1.0]]
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    ok = runs[(runs.kind == "metric") & (runs.error.fillna("") == "") & np.isfinite(runs.test_acc.astype(float))]
    rng = np.random.default_rng(seed)
    rows = []
    for metric, df in ok.groupby("method", sort=False):
        drop = (df.float_acc - df.test_acc).to_numpy(float)
        rho = spearman(df.predicted_loss, drop)
        per_seed = [spearman(g.predicted_loss, g.float_acc - g.test_acc) for _, g in df.groupby("seed")]
        per_seed = [r for r in per_seed if np.isfinite(r)]
        low = high = math.nan
        if n_boot:
            boot = _bootstrap(df, n_test, n_boot, rng)
            if len(boot):
                low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
        rows.append({"metric": metric, "spearman": rho, "ci_low": float(low), "ci_high": float(high),
                     "seed_mean": float(np.mean(per_seed)) if per_seed else math.nan,
                     "seed_std": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else math.nan,
                     "n_runs": len(df), "n_seeds": df.seed.nunique()})
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)


def _bootstrap(df: pd.DataFrame, n_test: int | None, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` values of rho: seeds drawn with replacement, accuracies redrawn from their binomial."""
    groups = [(g.predicted_loss.to_numpy(float), g.test_acc.to_numpy(float) / 100, float(g.float_acc.iloc[0]) / 100)
              for _, g in df.groupby("seed")]
    out = []
    for _ in range(n_boot):
        loss, drop = [], []
        for i in rng.integers(0, len(groups), len(groups)):
            pl, acc, flt = groups[i]
            if n_test:
                acc = rng.binomial(n_test, np.clip(acc, 0, 1)) / n_test
                flt = rng.binomial(n_test, min(max(flt, 0.0), 1.0)) / n_test
            loss.append(pl)
            drop.append(flt - acc)
        rho = spearman(np.concatenate(loss), np.concatenate(drop))
        if np.isfinite(rho):
            out.append(rho)
    return np.asarray(out)


@dataclass
class MetricStudy:
    """What ``metric_study`` measured.

    Attributes:
        runs: one row per method, budget and seed (``RUN_COLUMNS``):
            ``method`` (a metric, ``"uniform"`` or ``"float"``), ``kind``
            (``"metric"``, ``"uniform"``, ``"float"``), ``budget`` (average
            bits; NaN for float), ``w_bits`` (per layer, dash-joined),
            ``avg_bits`` and ``kib`` of the schedule, ``predicted_loss`` (the
            front's, NaN for the references), ``float_acc`` (the seed's float
            model), ``test_acc`` (%), ``acc_drop = float_acc - test_acc``,
            ``train_seconds``, ``error``.
        summary: one row per method and budget (``SUMMARY_COLUMNS``): means
            over seeds, ``acc_ci95`` (half-width of the 95% interval: seed
            spread and the test set's size, as in ``pdbviz.claims``),
            ``w_bits`` of the first seed and ``n_schedules`` (distinct
            schedules over the seeds).
        correlation: one row per metric (``rank_correlation``): Spearman's
            rho between predicted loss and accuracy drop (higher is better),
            its bootstrap interval and the per-seed spread.
        sensitivity: every seed's ``sensitivity_metrics`` frame, with a ``seed`` column.
        config: how the study was made (dataset, model, metrics, budgets, seeds, epochs...).
    """

    runs: pd.DataFrame
    summary: pd.DataFrame
    correlation: pd.DataFrame
    sensitivity: pd.DataFrame
    config: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"MetricStudy({len(self.correlation)} metrics x {len(self.config.get('budgets', []))} budgets x "
                f"{len(self.config.get('seeds', []))} seeds on {self.config.get('dataset')!r} / "
                f"{self.config.get('model')!r})")

    def _repr_html_(self) -> str:
        return self.correlation._repr_html_()

    def accuracy_table(self) -> pd.DataFrame:
        """Accuracy (%) at each budget, one row per method, one column per budget: ``"mean ± ci95"`` strings."""
        s = self.summary[self.summary.kind != "float"]
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
        flt = self.summary[self.summary.kind == "float"]
        head = (f"Rank correlation of predicted loss with measured accuracy drop (Spearman; higher is better), "
                f"{len(self.config.get('seeds', []))} seeds:")
        lines = [head, c[["metric", "spearman (95% CI)", "per seed", "n_runs"]].to_string(index=False), "",
                 "Test accuracy (%, mean ± 95% CI) at each budget (average weight bits):",
                 self.accuracy_table().to_string()]
        if len(flt):
            lines.append(f"float-32: {_pm(flt.acc_mean.iloc[0], flt.acc_ci95.iloc[0])}")
        return "\n".join(lines)

    # -- files ------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write the four tables as CSV and ``study.json`` (configuration) into ``directory``, each atomically."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for attr, fname in _FILES.items():
            with atomic_write(directory / fname, "w", encoding="utf-8") as fh:
                getattr(self, attr).to_csv(fh, index=False)
        with atomic_write(directory / "study.json", "w", encoding="utf-8") as fh:
            json.dump({"format_version": STUDY_FORMAT_VERSION, "config": self.config}, fh, indent=2,
                      default=json_default)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "MetricStudy":
        """Read what ``save`` wrote."""
        doc, frames = read_saved_folder(directory, "study.json", STUDY_FORMAT_VERSION, "study", _FILES)
        for name, col in (("runs", "error"), ("runs", "w_bits"), ("summary", "w_bits")):
            frames[name][col] = frames[name][col].astype(object).fillna("").astype(str)
        return cls(config=doc["config"], **frames)


def _pm(mean, half, signed: bool = False) -> str:
    if mean is None or not np.isfinite(mean):
        return "--"
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return text if half is None or not np.isfinite(half) else f"{text} ± {half:.2f}"


def metric_study(data="digits", model="lenet", metrics: Sequence[str] = DEFAULT_METRICS,
                 budgets: Sequence[float] = DEFAULT_BUDGETS, seeds: Sequence[int] = (0, 1, 2), epochs: int = 10,
                 finetune_epochs: int = 3, n_samples: int = 256, w_bits: Sequence[int] = tuple(range(1, 9)),
                 monotone: bool = False, uniform: bool = True, lr: float = 3e-3, finetune_lr: float = 1e-3,
                 batch_size: int = 64, width: float = 1.0, n_boot: int = 1000, device="auto",
                 progress: bool = True) -> MetricStudy:
    """Which sensitivity metric predicts? Allocate with each metric at each budget, fine-tune, rank-correlate.

    The protocol and the statistics are in this module's docstring: per seed a
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
    seeds = [_check_int(s, "seeds", 0) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must hold at least one seed, each once, got {seeds!r}")
    epochs = _check_int(epochs, "epochs", 1)
    finetune_epochs = _check_int(finetune_epochs, "finetune_epochs", 1)
    n_samples = _check_int(n_samples, "n_samples", 2)
    n_boot = _check_int(n_boot, "n_boot", 0)
    if data.test is None:
        raise ValueError("data has no test split; metric_study measures test accuracy")
    config = RunConfig(epochs, True, finetune_epochs, lr, finetune_lr, batch_size, device, False)
    template = make_model(model, data, seeds[0], width)
    uniform_k = {b: max(k for k in w_bits if k <= b) for b in budgets} if uniform else {}
    bar = _bar(progress, len(seeds))
    rows, frames, trained = [], [], {}
    for seed in seeds:
        flt = train_float(model, data, seed, config, width)
        float_model, float_acc = flt["model"], flt["run"]["test_acc"]
        rows.append(_run_row("float", "float", math.nan, seed, BitSchedule.uniform(template, 32), template,
                             math.nan, float_acc, flt["run"]))
        frame = sensitivity_metrics(float_model, data, metrics=metrics, bits=_measured_bits(w_bits),
                                    n_samples=n_samples, seed=seed, batch_size=max(batch_size, 128))
        frames.append(frame.assign(seed=seed))
        plans = []
        for metric in metrics:
            front = pareto_front(float_model, predicted_loss(frame, metric, w_bits=w_bits), "memory",
                                 monotone=monotone)
            for b in budgets:
                i = front.index(b)
                plans.append((metric, "metric", b, front.schedule(i), float(front.table.loss.iloc[i])))
        for b, k in uniform_k.items():
            plans.append(("uniform", "uniform", b, BitSchedule.uniform(template, k), math.nan))
        for method, kind, b, schedule, loss in plans:
            key = (schedule.to_string(template), seed)
            if key not in trained:
                named = NamedSchedule(key[0], key[0], "allocated" if kind == "metric" else kind, schedule)
                trained[key] = run_schedule(named, seed, data, config, float_model, model, width)["run"]
            rows.append(_run_row(method, kind, b, seed, schedule, template, loss, float_acc, trained[key]))
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
                "uniform": {f"{b:g}": k for b, k in uniform_k.items()}}
    return MetricStudy(runs=runs, summary=_summary(runs, n_test),
                       correlation=rank_correlation(runs, n_test, n_boot, seed=seeds[0]),
                       sensitivity=pd.concat(frames, ignore_index=True), config=settings)


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


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


def _run_row(method, kind, budget, seed, schedule, template, loss, float_acc, run) -> dict:
    mem = memory_summary(template, schedule)
    return {"method": method, "kind": kind, "budget": budget, "seed": seed, "w_bits": "-".join(map(str, schedule.w_bits)),
            "avg_bits": mem.avg_bits, "kib": mem.quantized_weight_kib, "predicted_loss": loss, "float_acc": float_acc,
            "test_acc": run["test_acc"], "acc_drop": float_acc - run["test_acc"],
            "train_seconds": run["train_seconds"], "error": run["error"]}


def _summary(runs: pd.DataFrame, n_test: int) -> pd.DataFrame:
    rows = []
    for (method, budget), df in runs.groupby(["method", "budget"], sort=False, dropna=False):
        ok = df[df.error == ""]
        accs = ok.test_acc.astype(float).tolist()
        rows.append({"method": method, "kind": df.kind.iloc[0], "budget": budget, "w_bits": df.w_bits.iloc[0],
                     "avg_bits": df.avg_bits.mean(), "kib": df.kib.mean(), "predicted_loss": df.predicted_loss.mean(),
                     "acc_mean": float(np.mean(accs)) if accs else math.nan,
                     "acc_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else math.nan,
                     "acc_ci95": accuracy_ci95(accs, n_test), "drop_mean": ok.acc_drop.mean() if accs else math.nan,
                     "n_seeds": len(accs), "n_schedules": df.w_bits.nunique()})
    out = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    methods = list(dict.fromkeys(["float", *runs.method[runs.kind == "metric"], "uniform"]))
    out["_m"] = out.method.map({m: i for i, m in enumerate(methods)})
    return out.sort_values(["_m", "budget"], kind="stable").drop(columns="_m").reset_index(drop=True)


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="metric study", unit="seed")


__all__ = ["CORRELATION_COLUMNS", "DEFAULT_BUDGETS", "DEFAULT_METRICS", "MetricStudy", "RUN_COLUMNS",
           "STUDY_FORMAT_VERSION", "SUMMARY_COLUMNS", "metric_study", "rank_correlation", "spearman"]
