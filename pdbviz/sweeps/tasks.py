"""What a worker runs: the float model of one seed, or one schedule for one seed.

Both are thin wrappers of ``pdbviz.experiment.train_float`` and
``run_schedule`` (the functions ``compare`` runs one after another) that
never raise: a failure comes back as a record with its error. They set
torch's threads and add the separability profile for the first seed.

Models cross processes as ``{"state_dict", "schedule"}`` (CPU tensors and
plain values) and are rebuilt on arrival, as checkpoints are: a quantized
model's parametrizations cannot be pickled, and dask's generic serializer
for ``nn.Module`` does not keep a module's hook dictionaries. A user's
(untrained) model travels inside ``Shipped``, which dask pickles whole.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence

import torch
from torch import nn

from ..analysis import separability_profile
from ..data import Data, load_dataset
from ..experiment import RunConfig, failed_record, make_model, run_schedule, train_float
from ..quant import BitSchedule, quantize
from ..quant.presets import PRESETS, NamedSchedule

#: what a run of the first seed measures besides accuracy: (metrics, n_samples), or None
ProfileSpec = tuple[Sequence[str], int] | None


class Shipped:
    """A value dask pickles whole (an ``nn.Module`` would otherwise go through dask's generic serializer)."""

    def __init__(self, value):
        self.value = value


#: the scheduler event topic on which each schedule run says that it has started
STARTED = "pdbviz-run-started"


def unship(value):
    return value.value if isinstance(value, Shipped) else value


def hold(value):
    """The task that holds a shipped value on a worker (the scheduler keeps it, to redo if that worker dies)."""
    return value


def load_named(name: str) -> Data:
    """The task that loads a dataset given by name on a worker (no copy travels from the client)."""
    return load_dataset(name)


def pack(model: nn.Module | None, schedule: BitSchedule | None) -> dict | None:
    """A trained model as CPU tensors and its schedule's dict, for the trip to another process."""
    if model is None:
        return None
    return {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "schedule": schedule.to_dict() if schedule is not None else None}


def unpack(packed: dict | None, architecture: nn.Module) -> nn.Module | None:
    """Rebuild what ``pack`` made on ``architecture`` (a fresh float model of the same kind), in eval mode.

    Example:
        >>> from pdbviz import build_model
        >>> m = build_model("lenet")
        >>> torch.equal(unpack(pack(m, None), build_model("lenet", seed=1)).fc1.weight, m.fc1.weight)
        True
    """
    if packed is None:
        return None
    model = quantize(architecture, BitSchedule.from_dict(packed["schedule"])) if packed["schedule"] else architecture
    model.load_state_dict(packed["state_dict"])
    return model.eval()


def _set_threads(threads: int | None) -> None:
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _profile(model: nn.Module, data: Data, spec: ProfileSpec, seed: int):
    if spec is None:
        return None
    metrics, n_samples = spec
    return separability_profile(model, data, metrics=list(metrics), n_samples=n_samples, seed=seed)


def _finish(rec: dict, t0: float, schedule: BitSchedule | None = None, keep_model: bool = True) -> dict:
    rec["model"] = pack(rec.get("model"), schedule) if keep_model else None
    rec.setdefault("profile", None)
    rec["task_seconds"] = time.perf_counter() - t0
    rec["task_started"] = time.time() - rec["task_seconds"]  # wall clock, to see the gaps between tasks
    rec["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return rec


def float_task(model, data: Data, seed: int, config: RunConfig, width: float, profile: ProfileSpec,
               threads: int | None) -> dict:
    """Train the float model of ``seed`` (and profile it when ``profile`` is given); never raises.

    Example:
        >>> from pdbviz import load_dataset
        >>> rec = float_task("lenet", load_dataset("digits"), 0, RunConfig(epochs=1), 1.0, None, None)
        >>> rec["run"]["schedule"], rec["run"]["error"]
        ('float-32', '')
    """
    t0 = time.perf_counter()
    _set_threads(threads)
    model, data = unship(model), unship(data)
    try:
        rec = train_float(model, data, seed, config, width)
    except Exception as err:  # noqa: BLE001 - recorded, the sweep goes on
        return _finish(failed_record(PRESETS["float"].label, seed, err), t0)
    try:
        rec["profile"] = _profile(rec["model"], data, profile, seed)
    except Exception as err:  # noqa: BLE001 - the model stays usable for its schedules
        rec["run"]["error"] = f"separability profile: {type(err).__name__}: {err}"
    return _finish(rec, t0)


def mark_started() -> None:
    """Log on the scheduler (topic ``STARTED``) that the current task has started running on its worker.

    A worker that dies takes along the runs queued on it as well as the one it
    was running; the driver resubmits a run that died without ever starting
    (``runner.Runner``), so that only the run that kills its worker counts deaths.
    """
    try:
        import distributed

        worker = distributed.get_worker()
    except (ImportError, ValueError):  # not inside a dask worker
        return
    worker.log_event(STARTED, {"key": worker.get_current_task()})


def schedule_task(named: NamedSchedule, seed: int, data: Data, config: RunConfig, float_record: dict | None,
                  model, width: float, profile: ProfileSpec, threads: int | None, keep_model: bool = False) -> dict:
    """Quantize and train one schedule for ``seed``, from ``float_record``'s model when fine-tuning; never raises."""
    mark_started()
    t0 = time.perf_counter()
    _set_threads(threads)
    model, data, float_record = unship(model), unship(data), unship(float_record)
    packed = float_record.get("model") if float_record is not None else None
    if config.finetune and packed is None:
        why = float_record["run"]["error"] if float_record is not None else "missing"
        err = RuntimeError(f"the float model of seed {seed} failed: {why}")
        return _finish(failed_record(named.label, seed, err), t0)
    float_model = unpack(packed, make_model(model, data, seed, width)) if packed is not None else None
    rec = run_schedule(named, seed, data, config, float_model, model, width)
    if rec["model"] is not None:
        try:
            rec["profile"] = _profile(rec["model"], data, profile, seed)
        except Exception as err:  # noqa: BLE001
            rec["run"]["error"] = f"separability profile: {type(err).__name__}: {err}"
    return _finish(rec, t0, named.schedule, keep_model)
