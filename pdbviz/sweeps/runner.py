"""The driver side of a sweep: what is on disk, what to submit, and each run written as it lands."""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import CancelledError

from ..experiment import failed_record, make_model
from ..quant.presets import PRESETS
from .cluster import distributed, run_resources
from .plan import Plan
from .store import RunStore
from .tasks import STARTED, Shipped, float_task, hold, load_named, pack, schedule_task, unpack

log = logging.getLogger(__name__)

#: how many times a schedule run that died queued, without starting, is resubmitted
REQUEUES = 3


class SchedulerLostError(ConnectionError):
    """The dask scheduler went away mid-sweep; finished runs are on disk and a rerun resumes."""


class Runner:
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

    def _resume(self, plan: Plan, key: str, emit: bool = True) -> bool:
        if key in plan.records:
            return True
        doc = self._finished(key)
        if doc is None:
            return False
        plan.records[key] = {"run": doc["run"], "history": self.store.history(doc),
                             "profile": self.store.profile(doc), "model": None, "doc": doc}
        if emit:
            self._emit(plan, key, resumed=True)
        return True

    def load_finished(self) -> None:
        """Take every finished run from disk; the float models that pending runs fine-tune from are read now, and
        a float run whose model file does not load is redone."""
        for plan in self.plans:
            for seed in plan.seeds:
                self._resume(plan, plan.float_key(seed), emit=False)
            first = plan.records.get(plan.float_key(plan.seeds[0]))
            if plan.waiting and first is not None:
                self._resolve_allocated(plan, first.get("profile"))
            for _, _, key in plan.schedule_runs():
                self._resume(plan, key, emit=False)
            needed = {seed for _, seed, key in plan.schedule_runs() if key not in plan.records} | (
                set(plan.seeds) if plan.waiting else set())
            for seed in needed if plan.config.finetune else ():
                rec = plan.records.get(plan.float_key(seed))
                if rec is None or rec["run"]["error"]:
                    continue
                arch = None if isinstance(plan.model, str) else make_model(plan.model, plan.data, seed, plan.width)
                try:
                    rec["float_model"] = self.store.model(rec["doc"], arch)
                except ValueError as err:
                    log.warning("the float model of seed %d does not load (%s); it is trained again", seed, err)
                    del plan.records[plan.float_key(seed)]
            for key in [k for k in plan.records]:
                self._emit(plan, key, resumed=True)

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
    def run(self, client, threads: int | None, gpu: bool, own: bool) -> None:
        """Submit every pending run to ``client`` (``own``: the LocalCluster the sweep started) and land each."""
        dd = distributed()
        self.client, self.threads = client, threads
        self.resources = run_resources(client, gpu, own)
        self.ac = dd.as_completed()
        self.meta, self.data_f, self.float_f, self.requeued = {}, {}, {}, {}
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
                model = rec.get("float_model")
                if model is None:  # a float read from disk after the start (the model is read in load_finished)
                    arch = None if isinstance(plan.model, str) else make_model(plan.model, plan.data, seed,
                                                                               plan.width)
                    model = self.store.model(rec["doc"], arch)
                shipped = {"run": rec["run"], "model": pack(model, None)}
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
        args = (self._model_arg(plan), self._data_future(plan), seed, plan.config, plan.width, plan.profile_spec(seed),
                self.threads)
        self.float_f[(plan.name, seed)] = self._submit(float_task, args, (plan, "float", None, seed, key), "float")

    def _submit_schedules(self, plan: Plan) -> None:
        submitted = {m[-1] for m in self.meta.values()}
        for named, seed, key in plan.schedule_runs():
            if key in plan.records or key in submitted or self._resume(plan, key):
                continue
            submitted.add(key)
            self._submit_schedule(plan, named, seed, key)

    def _submit_schedule(self, plan: Plan, named, seed: int, key: str) -> None:
        args = (named, seed, self._data_future(plan), plan.config, self._float_source(plan, seed),
                self._model_arg(plan), plan.width, plan.profile_spec(seed), self.threads, self.keep_models)
        self._submit(schedule_task, args, (plan, "schedule", named, seed, key), "run")

    def _requeue(self, fut, err: Exception, plan: Plan, named, seed: int, key: str) -> bool:
        """Resubmit a schedule run that dying workers took along while it waited, never started (see
        ``tasks.mark_started``); at most ``REQUEUES`` times per run. True when it was resubmitted."""
        if type(err).__name__ != "KilledWorker" or self.requeued.get(key, 0) >= REQUEUES:
            return False
        started = {msg.get("key") for _, msg in self.client.get_events(STARTED) if isinstance(msg, dict)}
        if fut.key in started:
            return False
        self.requeued[key] = self.requeued.get(key, 0) + 1
        log.info("run %s was queued on workers that died and never started: resubmitted", key)
        self._submit_schedule(plan, named, seed, key)
        return True

    def _land(self, fut) -> None:
        plan, task, named, seed, key = self.meta.pop(fut.key)
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
            if task == "schedule" and self._requeue(fut, err, plan, named, seed, key):
                return
            rec = failed_record(label, seed, err)
            rec.update(profile=None, task_seconds=float("nan"), task_started=float("nan"), worker="")
            if task == "schedule":
                frec = plan.records.get(plan.float_key(seed))
                if frec is not None and frec["run"]["error"]:
                    rec["run"]["error"] = f"the float model of seed {seed} failed: {frec['run']['error']}"
        doc = {**plan.describe(task, named, seed), "run": rec["run"], "task_seconds": rec["task_seconds"],
               "task_started": rec["task_started"], "worker": rec["worker"]}
        model = None
        if rec["model"] is not None and (task == "float" or self.keep_models):
            model = unpack(rec["model"], make_model(plan.model, plan.data, seed, plan.width))
        self.store.write(key, doc, history=rec["history"], profile=rec["profile"],
                         model=model if task == "float" else None)
        plan.records[key] = {"run": rec["run"], "history": rec["history"], "profile": rec["profile"],
                             "model": model if self.keep_models else None, "doc": doc}
        self._emit(plan, key, resumed=False)
        if task == "float" and seed == plan.seeds[0] and plan.waiting:
            self._resolve_allocated(plan, rec["profile"])
            self._submit_schedules(plan)

    def _emit(self, plan: Plan, key: str, resumed: bool) -> None:
        self.done += 1
        rec = plan.records[key]
        record = plan.run_record(key, rec["doc"], rec["history"], resumed, self.done, self.total)
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
