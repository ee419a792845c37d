"""``sweep``: the runs of ``compare`` as independent tasks on a dask.distributed cluster, streamed to disk."""

from __future__ import annotations

import logging
import math
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from pathlib import Path

import torch
from torch import nn

from ..data import Data
from ..experiment import DEFAULT_SCHEDULES, RunConfig, _data, _failed, make_model
from ..quant import BitSchedule
from ..quant.presets import PRESETS
from ..results import Results
from .cluster import connect, distributed, run_resources
from .plan import Plan, RunRecord
from .store import RunStore
from .tasks import Shipped, float_task, hold, load_named, pack, schedule_task, unpack

log = logging.getLogger(__name__)


class SchedulerLostError(ConnectionError):
    """The dask scheduler went away mid-sweep; finished runs are on disk and a rerun resumes."""


def sweep(data: str | Data | Sequence = "digits", model: str | nn.Module | Sequence = "lenet",
          schedules: Sequence = DEFAULT_SCHEDULES, epochs: int = 20, seeds: Sequence[int] = (0,),
          finetune: bool = True, finetune_epochs: int = 3, lr: float = 3e-3, finetune_lr: float = 1e-3,
          batch_size: int = 64, width: float = 1.0, profile_metrics: Sequence[str] = ("fisher", "probe"),
          n_samples: int = 1000, device: str = "auto", progress: bool = True, keep_models: bool = False, *,
          out: str | os.PathLike = "pdbviz-sweep", client=None, workers: int | None = None,
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
    single = isinstance(data, (str, Data)) and isinstance(model, (str, nn.Module))
    datas = [(_data(d), d if isinstance(d, str) else None) for d in _as_list(data, (str, Data), "data")]
    models = _as_list(model, (str, nn.Module), "model")
    for m in models:
        if not isinstance(m, (str, nn.Module)):
            raise TypeError(f"model must be a model name or an nn.Module (or a list of them), got {type(m).__name__}")
    seeds, schedules = _check_seeds(seeds), _check_schedules(schedules)
    for name, value in (("epochs", epochs), ("finetune_epochs", finetune_epochs), ("batch_size", batch_size),
                        ("n_samples", n_samples)):
        _check_int(name, value, 1)
    for name, value in (("lr", lr), ("finetune_lr", finetune_lr), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    out = _check_out(out)
    _check_runner(client, workers, threads, retries, on_result)
    if isinstance(profile_metrics, str):
        profile_metrics = (profile_metrics,)
    config = RunConfig(epochs, finetune, finetune_epochs, lr, finetune_lr, batch_size, device, False)
    plans = [Plan(d, m, schedules, seeds, config, width, tuple(profile_metrics), n_samples, name) for d, name in datas
             for m in models]
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        raise ValueError(f"data x model gives the pair {next(n for n in names if names.count(n) > 1)} twice; "
                         "each dataset and model name may appear once")
    runner = _Runner(plans, RunStore(out), retry_failed, on_result, progress, keep_models)
    try:
        runner.load_finished()
        if runner.pending():
            gpu = _wants_gpu(device, client)
            with connect(client, workers, gpu, retries) as c:
                runner.run(c, threads=1 if client is None and threads is None else threads, gpu=gpu)
    finally:
        runner.close()
    results = {}
    for plan in plans:
        r = results[plan.name] = plan.results(keep_models)
        r.save(out if single else out / f"{plan.name[0]}_{plan.name[1]}")
    return results[plans[0].name] if single else results


class _Runner:
    """Submits the pending runs of every plan, writes each as it lands, reports progress."""

    def __init__(self, plans: list[Plan], store: RunStore, retry_failed: bool, on_result, progress: bool,
                 keep_models: bool):
        self.plans, self.store, self.retry_failed = plans, store, retry_failed
        self.on_result, self.keep_models = on_result, keep_models
        self.total, self.done = self._count(), 0
        self.futures: dict = {}
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc="sweep", unit="run")

    # -- what is already on disk ------------------------------------------
    def _finished(self, key: str) -> dict | None:
        doc = self.store.read(key)
        if doc is None or (self.retry_failed and doc["run"]["error"]):
            return None
        return doc

    def _resume(self, plan: Plan, key: str) -> bool:
        if key in plan.records:
            return True
        doc = self._finished(key)
        if doc is None:
            return False
        history = self.store.history(doc)
        plan.records[key] = {"run": doc["run"], "history": history, "profile": self.store.profile(doc),
                             "model": None, "doc": doc}
        self._emit(plan, key, doc, history, resumed=True)
        return True

    def load_finished(self) -> None:
        for plan in self.plans:
            for seed in plan.seeds:
                self._resume(plan, plan.float_key(seed))
            first = plan.records.get(plan.float_key(plan.seeds[0]))
            if plan.waiting and first is not None:
                self._resolve_allocated(plan, first.get("profile"))
            for _, _, key in plan.schedule_runs():
                self._resume(plan, key)

    def pending(self) -> bool:
        return any(p.waiting or any(p.float_key(s) not in p.records for s in p.seeds)
                   or any(k not in p.records for *_, k in p.schedule_runs()) for p in self.plans)

    def _count(self) -> int:
        """All runs of the sweep: floats, distinct schedule runs, and those waiting for an allocation."""
        return sum(len(p.seeds) + len({k for *_, k in p.schedule_runs()}) + p.n_waiting_runs() for p in self.plans)

    def _resolve_allocated(self, plan: Plan, profile) -> None:
        plan.resolve_allocated(profile)
        self.total = self._count()
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    # -- running ----------------------------------------------------------
    def run(self, client, threads: int | None, gpu: bool) -> None:
        dd = distributed()
        self.client, self.threads = client, threads
        self.resources = run_resources(client, gpu)
        self.ac = dd.as_completed()
        self.meta, self.data_f, self.float_f = {}, {}, {}
        for plan in self.plans:
            for seed in plan.seeds:
                if plan.float_key(seed) not in plan.records:
                    self._submit_float(plan, seed)
            self._submit_schedules(plan)
        for fut in self.ac:
            self._land(fut)

    def _ship(self, value, name: str):
        """A future holding ``value``: the task that makes it is kept by the scheduler, so a worker that dies
        with it does not lose it (scattered data would be lost), and other workers fetch it from a peer once."""
        key = f"pdbviz-{name}-{uuid.uuid4().hex[:12]}"
        if isinstance(value, str):  # a dataset name: each holder loads it itself
            return self.client.submit(load_named, value, key=key, pure=False)
        return self.client.submit(hold, Shipped(value), key=key, pure=False)

    def _data_future(self, plan: Plan):
        if plan.name not in self.data_f:
            self.data_f[plan.name] = self._ship(plan.data_name or plan.data, "data")
        return self.data_f[plan.name]

    def _model_arg(self, plan: Plan):
        """A zoo name travels as itself; a module is shipped once, like the data."""
        if isinstance(plan.model, str):
            return plan.model
        if ("model",) + plan.name not in self.data_f:
            self.data_f[("model",) + plan.name] = self._ship(plan.model, "model")
        return self.data_f[("model",) + plan.name]

    def _float_source(self, plan: Plan, seed: int):
        """What a schedule task fine-tunes from: the float task's future, or the float model read from disk."""
        if not plan.config.finetune:
            return None
        fkey = plan.float_key(seed)
        if (plan.name, seed) not in self.float_f:
            rec = plan.records[fkey]
            if rec["run"]["error"]:
                self.float_f[(plan.name, seed)] = {"run": rec["run"], "model": None}
            else:
                arch = None if isinstance(plan.model, str) else make_model(plan.model, plan.data, seed, plan.width)
                shipped = {"run": rec["run"], "model": pack(self.store.model(rec["doc"], arch), None)}
                self.float_f[(plan.name, seed)] = self._ship(shipped, "float-model")
        return self.float_f[(plan.name, seed)]

    def _submit(self, fn, args: tuple, meta: tuple, name: str):
        key = f"pdbviz-{name}-{meta[-1][:10]}-{uuid.uuid4().hex[:8]}"
        fut = self.client.submit(fn, *args, key=key, pure=False, resources=self.resources)
        self.meta[fut.key] = meta
        self.futures[fut.key] = fut
        self.ac.add(fut)
        return fut

    def _submit_float(self, plan: Plan, seed: int) -> None:
        key = plan.float_key(seed)
        fut_args = (self._model_arg(plan), self._data_future(plan), seed, plan.config, plan.width, plan.profile_spec(seed),
                    self.threads)
        self.float_f[(plan.name, seed)] = self._submit(float_task, fut_args, (plan, "float", None, seed, key), "float")

    def _submit_schedules(self, plan: Plan) -> None:
        submitted = {m[-1] for m in self.meta.values()}
        for named, seed, key in plan.schedule_runs():
            if key in plan.records or key in submitted or self._resume(plan, key):
                continue
            submitted.add(key)
            args = (named, seed, self._data_future(plan), plan.config, self._float_source(plan, seed),
                    self._model_arg(plan), plan.width, plan.profile_spec(seed), self.threads, self.keep_models)
            self._submit(schedule_task, args, (plan, "schedule", named, seed, key), "run")

    def _land(self, fut) -> None:
        plan, kind, named, seed, key = self.meta.pop(fut.key)
        self.futures.pop(fut.key, None)  # a float future stays alive in float_f for the runs that need it
        label = named.label if named is not None else PRESETS["float"].label
        try:
            rec = fut.result()
        except CancelledError:
            if self.client.status != "running":
                raise SchedulerLostError(f"the dask scheduler went away; {self.done} of {self.total} runs are "
                                         f"written to {self.store.root}; run the same sweep again to resume") from None
            raise RuntimeError(f"a run of the sweep was cancelled on the cluster ({fut.key}); {self.done} of "
                               f"{self.total} runs are written to {self.store.root}; run the same sweep again to "
                               "resume") from None
        except Exception as err:  # noqa: BLE001 - KilledWorker after its retries, or a lost dependency
            rec = _failed(label, seed, err)
            rec.update(profile=None, task_seconds=float("nan"), task_started=float("nan"), worker="")
            if kind == "schedule":
                frec = plan.records.get(plan.float_key(seed))
                if frec is not None and frec["run"]["error"]:
                    rec["run"]["error"] = f"the float model of seed {seed} failed: {frec['run']['error']}"
        doc = {**plan.describe(kind, named, seed), "run": rec["run"], "task_seconds": rec["task_seconds"],
               "task_started": rec["task_started"], "worker": rec["worker"]}
        model = None
        if rec["model"] is not None and (kind == "float" or self.keep_models):
            model = unpack(rec["model"], make_model(plan.model, plan.data, seed, plan.width))
        self.store.write(key, doc, history=rec["history"], profile=rec["profile"],
                         model=model if kind == "float" else None)
        plan.records[key] = {"run": rec["run"], "history": rec["history"], "profile": rec["profile"],
                             "model": model if self.keep_models else None, "doc": doc,
                             "task_seconds": rec["task_seconds"]}
        self._emit(plan, key, doc, rec["history"], resumed=False)
        if kind == "float" and seed == plan.seeds[0] and plan.waiting:
            self._resolve_allocated(plan, rec["profile"])
            self._submit_schedules(plan)

    def _emit(self, plan: Plan, key: str, doc: dict, history, resumed: bool) -> None:
        self.done += 1
        record = plan.run_record(key, doc, history, resumed, self.done, self.total)
        if self.bar is not None:
            self.bar.set_postfix_str(f"{record.label} (seed {record.seed}): {record.test_acc:.2f}%")
            self.bar.update(1)
        if self.on_result is not None:
            self.on_result(record)

    def close(self) -> None:
        """Stop what is still running on a cluster that outlives the sweep, and close the progress bar."""
        client = getattr(self, "client", None)
        if client is not None and self.futures:
            try:
                client.cancel(list(self.futures.values()), force=True)
            except Exception as err:  # noqa: BLE001 - the scheduler may be gone already
                log.debug("could not cancel the sweep's futures: %s", err)
        self.futures, self.float_f, self.data_f = {}, {}, {}
        if self.bar is not None:
            self.bar.close()


def _wants_gpu(device, client) -> bool:
    if isinstance(device, torch.device):
        device = str(device)
    if isinstance(device, str) and device.startswith("cuda"):
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


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return value


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


def _check_schedules(schedules) -> list:
    if isinstance(schedules, (str, BitSchedule)):
        schedules = [schedules]
    schedules = list(schedules)
    if not schedules:
        raise ValueError("schedules is empty")
    return schedules


def _check_out(out) -> Path:
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a folder path, got {type(out).__name__}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder, but {str(out)!r} is a file")
    return out


def _check_runner(client, workers, threads, retries, on_result) -> None:
    if client is not None and not isinstance(client, str):
        dd = distributed()
        if not isinstance(client, dd.Client):
            raise TypeError(f"client must be None (a local cluster), a scheduler address such as "
                            f"'tcp://10.0.0.5:8786', or a distributed.Client, got {type(client).__name__}")
    if workers is not None:
        _check_int("workers", workers, 1)
        if client is not None:
            raise ValueError(f"workers={workers} sizes the local cluster; with a client or scheduler address the "
                             "cluster's own workers run the sweep (leave workers=None)")
    if threads is not None:
        _check_int("threads", threads, 1)
    _check_int("retries", retries, 0)
    if on_result is not None and not callable(on_result):
        raise TypeError(f"on_result must be a function of one RunRecord, got {type(on_result).__name__}")
