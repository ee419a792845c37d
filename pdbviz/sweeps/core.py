"""``sweep``: the runs of ``compare`` as independent tasks on a dask.distributed cluster, streamed to disk."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from .._checks import NON_NEGATIVE_INT, POSITIVE_INT, POSITIVE_REAL, OrNone, validate_params
from ..data import Data, as_data
from ..experiment import DEFAULT_SCHEDULES, Entry, RunConfig, entry_metrics
from ..quant import BitSchedule
from ..results import Results
from .cluster import connect, distributed
from .plan import Plan, RunRecord
from .runner import Runner
from .store import RunStore

if TYPE_CHECKING:  # dask is optional: imported where a sweep runs
    from distributed import Client


_COUNT = OrNone(POSITIVE_INT, mention=False)  # None: a default chosen by the cluster


@validate_params({"epochs": POSITIVE_INT, "finetune_epochs": POSITIVE_INT, "batch_size": POSITIVE_INT,
                  "n_samples": POSITIVE_INT, "lr": POSITIVE_REAL, "finetune_lr": POSITIVE_REAL, "width": POSITIVE_REAL,
                  "workers": _COUNT, "threads": _COUNT, "retries": NON_NEGATIVE_INT})
def sweep(data: str | Data | Sequence = "digits", model: str | nn.Module | Sequence = "lenet",
          schedules: Sequence = DEFAULT_SCHEDULES, epochs: int = 20, seeds: Sequence[int] = (0,),
          finetune: bool = True, finetune_epochs: int = 3, lr: float = 3e-3, finetune_lr: float = 1e-3,
          batch_size: int = 64, width: float = 1.0, profile_metrics: Sequence[str] = ("fisher", "probe"),
          n_samples: int = 1000, device: str | torch.device = "auto", progress: bool = True,
          keep_models: bool = False, *,
          out: str | os.PathLike = "pdbviz-sweep", client: str | Client | None = None, workers: int | None = None,
          threads: int | None = None, retries: int = 2, retry_failed: bool = True,
          on_result: Callable[[RunRecord], None] | None = None) -> Results | dict[tuple[str, str], Results]:
    """Run ``compare``'s runs as independent tasks on a dask.distributed cluster, each written to ``out`` as it lands.

    Every float model (one per seed) and every (schedule, seed) run of every
    dataset x model is one task; a schedule's task depends on the float model
    of its seed, which reaches each worker once, as does the data. Each
    finished run is written at once to ``out/runs/`` (one small record per
    run, keyed by its configuration, seed and the pdbviz version), so running
    the same sweep again skips what is done: an interrupted sweep (Ctrl-C, a
    restarted kernel, a lost scheduler) loses only the runs in flight. At the
    end the records become the same ``Results`` as ``compare``'s, saved in
    ``out`` (in ``out/<dataset>_<model>/`` for several datasets or models).

    Args:
        data, model: as in ``compare``, or lists of them: every pair is swept.
        schedules ... keep_models: as in ``compare`` (``keep_models`` keeps the
            models trained by this call only; resumed runs have none in memory).
        out: the results folder.
        client: None starts a LocalCluster on this machine (``workers``
            processes of one thread); a scheduler address (``"tcp://host:8786"``)
            or a ``distributed.Client`` (LocalCluster, SSHCluster, dask-jobqueue)
            runs on that cluster. With ``device="cuda"`` each run asks for one
            ``GPU`` resource (``dask worker ADDRESS --resources GPU=1``).
        workers: processes of the LocalCluster (default: one per core).
        threads: torch threads per run (default 1 on the LocalCluster, as set
            by the workers elsewhere). Numbers match ``compare`` run with the
            same torch threads.
        retries: a run whose worker dies is retried on another worker this many
            times, then recorded as failed (LocalCluster; elsewhere the
            scheduler's ``distributed.scheduler.allowed-failures`` applies).
        retry_failed: also redo runs that failed in an earlier sweep.
        on_result: called with a ``RunRecord`` for each run, resumed ones
            first; an exception raised there stops the sweep (runs written so
            far stay).

    Returns ``Results`` for one dataset and one model, else ``{(dataset, model): Results}``.

    Example:
        >>> r = sweep("digits", schedules=["float", "2"], epochs=1, finetune_epochs=1,
        ...           out="sweep-digits", workers=2)                      # doctest: +SKIP
        >>> r.table.schedule.tolist()                                     # doctest: +SKIP
        ['float-32', 'uniform 2-bit']
        >>> sweep("digits", out="sweep-digits", client="tcp://10.0.0.5:8786")  # a cluster  # doctest: +SKIP
    """
    distributed()  # the extra is missing: say so before anything else
    several = isinstance(data, list) and bool(data) and all(isinstance(d, (str, Data)) for d in data)
    single = not several and isinstance(model, (str, nn.Module))
    datas = [(as_data(d), d if isinstance(d, str) else None) for d in (data if several else [data])]
    models = _as_list(model, (str, nn.Module), "model")
    for m in models:
        if not isinstance(m, (str, nn.Module)):
            raise TypeError(f"model must be a model name or an nn.Module (or a list of them), got {type(m).__name__}")
    seeds, schedules = _check_seeds(seeds), _as_entries(schedules)
    out = _check_out(out)
    _check_runner(client, workers, on_result)
    if isinstance(profile_metrics, str):
        profile_metrics = (profile_metrics,)
    if isinstance(device, torch.device):
        device = str(device)  # a run's key and record hold plain values
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', 'cpu', 'cuda' (or 'cuda:N') or a torch.device, got "
                        f"{type(device).__name__}")
    config = RunConfig(epochs, finetune, finetune_epochs, lr, finetune_lr, batch_size, device, False)
    plans = [Plan(d, m, schedules, seeds, config, width, tuple(profile_metrics), n_samples, name) for d, name in datas
             for m in models]
    _check_no_metric_entries(plans)
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        raise ValueError(f"data x model gives the pair {next(n for n in names if names.count(n) > 1)} twice; "
                         "each dataset and model name may appear once")
    runner = Runner(plans, RunStore(out), retry_failed, on_result, progress, keep_models)
    try:
        runner.load_finished()
        if runner.pending():
            gpu = _wants_gpu(device, client)
            with connect(client, workers, gpu, retries) as c:
                runner.run(c, threads=1 if client is None and threads is None else threads, gpu=gpu,
                           own=client is None)
    finally:
        runner.close()
    results = {}
    for plan in plans:
        r = results[plan.name] = plan.results(keep_models)
        r.save(out if single else out / f"{plan.name[0]}_{plan.name[1]}")
    return results[plans[0].name] if single else results


def _wants_gpu(device: str, client) -> bool:
    if device.startswith("cuda"):
        return True
    return device == "auto" and client is None and torch.cuda.is_available()


def _as_list(value, single: tuple, what: str) -> list:
    if isinstance(value, single):
        return [value]
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{what} is an empty list; give at least one")
        return list(value)
    return [value]


def _check_seeds(seeds) -> list[int]:
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not seeds:
        raise ValueError("seeds is empty; give at least one seed")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int):
            raise ValueError(f"seeds must be integers, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds has duplicates: {seeds}; each seed is one run")
    return seeds


def _as_entries(schedules) -> list:
    if isinstance(schedules, (str, BitSchedule, Entry)):
        schedules = [schedules]
    schedules = list(schedules)
    if not schedules:
        raise ValueError("schedules is empty")
    return schedules


def _check_no_metric_entries(plans) -> None:
    named = list(dict.fromkeys(m for p in plans for m in entry_metrics(p.entries)))
    if named:
        raise ValueError(f"schedules: sweep does not run 'alloc:METRIC:B' entries (here {', '.join(named)}); "
                         "use 'alloc:B' (separability), or pdbviz.compare for other metrics")


def _check_out(out) -> Path:
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a folder path, got {type(out).__name__}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder, but {str(out)!r} is a file")
    return out


def _check_runner(client, workers, on_result) -> None:
    if isinstance(client, str) and not client.strip():
        raise ValueError("client is an empty address; give a scheduler address such as 'tcp://10.0.0.5:8786', "
                         "or None for a local cluster")
    if client is not None and not isinstance(client, str):
        dd = distributed()
        if not isinstance(client, dd.Client):
            raise TypeError(f"client must be None (a local cluster), a scheduler address such as "
                            f"'tcp://10.0.0.5:8786', or a distributed.Client, got {type(client).__name__}")
    if workers is not None and client is not None:
        raise ValueError(f"workers={workers} sizes the local cluster; with a client or scheduler address the "
                         "cluster's own workers run the sweep (leave workers=None)")
    if on_result is not None and not callable(on_result):
        raise TypeError(f"on_result must be a function of one RunRecord, got {type(on_result).__name__}")
