"""Speed-up of pdbviz.sweep on a local cluster over the same runs in one process, and its per-task overhead.

Run: python benchmarks/sweep.py [--workers 2] [--rounds 3]

The work: 8 LeNet fine-tunes on the embedded digits (uniform 1, 2, 3, 4, 5, 6
and 8 bits, and 8-4-2-1; 3 epochs each, seed 0, compare's defaults including
the separability profile of each run), all from one float model trained
beforehand and stored as a sweep record.

- sequential: one process runs the 8 one after another with the function
  every worker runs (``pdbviz.sweeps.tasks.schedule_task``), torch using all
  the process's threads, as ``compare`` does.
- sweep: ``pdbviz.sweep`` on a LocalCluster of ``--workers`` processes of
  one thread (started and warmed before timing, as the sweep's own cluster is
  made), resuming from the float model's record so that exactly the 8
  fine-tunes run. Its wall time runs from the call to the returned
  ``Results``: shipping the data and the float model, the 8 runs, writing 8
  records, assembling and saving the results.

The sequential baseline is timed with torch's default threads and with one
thread, and the speed-up is taken against the faster of the two. Rounds
alternate the variants so that drift on a shared machine hits all alike;
medians are reported.

Scheduling overhead per task: on each worker, the gap between the end of one
run and the start of the next (dispatch, transfer and unpickling of its
inputs), from the wall-clock start and duration each run records. The
start-up (from the call to the first run starting: loading and fingerprinting
the data, resolving schedules, shipping data and the float model) and the
end (writing the last record, assembling and saving the results) are
reported apart; both are in the end-to-end speed-up. A last figure, the round
trip of 200 empty tasks, is the scheduler's own cost per task.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

import pdbviz
from pdbviz.experiment import RunConfig, resolve_schedule
from pdbviz.sweeps import RunStore
from pdbviz.sweeps.cluster import connect
from pdbviz.sweeps.tasks import pack, schedule_task

SCHEDULES = ["1", "2", "3", "4", "5", "6", "8", "halving"]
SETTINGS = dict(epochs=20, finetune_epochs=3, progress=False)


def _noop(i):
    return i


def _warm():
    import pdbviz.sweeps.tasks  # noqa: F401 - imports torch and pdbviz in the worker

    return torch.get_num_threads()


def sequential(base: Path, data, threads: int) -> tuple[float, list[float]]:
    """The 8 runs one after another in this process (torch on ``threads``), from the float model in ``base``."""
    torch.set_num_threads(threads)
    store = RunStore(base)
    doc = store.read(store.keys()[0])
    model = store.model(doc)
    template = pdbviz.build_model("lenet", data.input_shape, data.num_classes)
    config = RunConfig(finetune_epochs=3)
    floated = {"run": doc["run"], "model": pack(model, None)}
    t0, accs = time.perf_counter(), []
    for entry in SCHEDULES:
        rec = schedule_task(resolve_schedule(entry, template), 0, data, config, floated, "lenet", 1.0,
                            (("fisher", "probe"), 1000), None)
        accs.append(rec["run"]["test_acc"])
    return time.perf_counter() - t0, accs


def swept(base: Path, client) -> dict:
    """The same 8 runs with pdbviz.sweep on ``client``: wall time, scheduling gaps, start-up, end, accuracies."""
    out = Path(tempfile.mkdtemp(prefix="pdbviz-bench-sweep-"))
    shutil.copytree(base / "runs", out / "runs")
    try:
        t_call = time.time()
        r = pdbviz.sweep("digits", schedules=SCHEDULES, out=out, client=client, threads=1, **SETTINGS)
        t_end = time.time()
        store = RunStore(out)
        docs = [d for d in map(store.read, store.keys()) if d["task"] == "schedule"]
        assert len(docs) == len(SCHEDULES) and (r.runs.error == "").all()
        gaps, starts, ends = [], [], []
        for worker in {d["worker"] for d in docs}:
            mine = sorted((d["task_started"], d["task_started"] + d["task_seconds"]) for d in docs
                          if d["worker"] == worker)
            gaps += [start - prev_end for (_, prev_end), (start, _) in zip(mine, mine[1:])]
            starts.append(mine[0][0])
            ends.append(mine[-1][1])
        return {"wall": t_end - t_call, "gaps": gaps, "startup": min(starts) - t_call, "end": t_end - max(ends),
                "acc": r.runs.test_acc.tolist()}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data = pdbviz.load_dataset("digits")
    default_threads = torch.get_num_threads()
    base = Path(tempfile.mkdtemp(prefix="pdbviz-bench-base-"))
    seq = {default_threads: [], 1: []}
    par = []
    with connect(None, args.workers, gpu=False, retries=2) as client:
        client.run(_warm)
        pdbviz.sweep("digits", schedules=["float"], out=base, client=client, threads=1, **SETTINGS)  # untimed
        t0 = time.perf_counter()
        client.gather(client.map(_noop, range(200), pure=False))
        noop_ms = 1000 * (time.perf_counter() - t0) / 200
        for i in range(args.rounds):
            for threads in seq:
                seq[threads].append(sequential(base, data, threads))
            par.append(swept(base, client))
            print(f"round {i + 1}: sequential " + ", ".join(f"{v[-1][0]:.2f} s ({t} threads)" for t, v in seq.items())
                  + f"; sweep {par[-1]['wall']:.2f} s (start-up {par[-1]['startup']:.2f} s, end "
                  f"{par[-1]['end']:.2f} s)")
    shutil.rmtree(base, ignore_errors=True)
    torch.set_num_threads(default_threads)
    seq_s = {t: statistics.median(x[0] for x in v) for t, v in seq.items()}
    best = min(seq_s, key=seq_s.get)
    wall = statistics.median(p["wall"] for p in par)
    gaps_ms = [1000 * g for p in par for g in p["gaps"]]
    result = {"runs": len(SCHEDULES), "workers": args.workers, "rounds": args.rounds,
              "sequential_s": {str(t): s for t, s in seq_s.items()}, "sequential_best_threads": best,
              "sweep_s": wall, "speedup": seq_s[best] / wall,
              "scheduling_gap_ms": {"median": statistics.median(gaps_ms), "max": max(gaps_ms), "n": len(gaps_ms)},
              "startup_s": statistics.median(p["startup"] for p in par),
              "end_s": statistics.median(p["end"] for p in par), "noop_task_ms": noop_ms,
              "accuracy_sequential": seq[1][-1][1], "accuracy_sweep": par[-1]["acc"],
              "pdbviz": pdbviz.__version__, "torch": torch.__version__}
    print(f"\n{len(SCHEDULES)} LeNet/digits fine-tunes, median of {args.rounds} rounds: sequential "
          + ", ".join(f"{s:.2f} s ({t} threads)" for t, s in seq_s.items())
          + f"; sweep on {args.workers} workers {wall:.2f} s: speed-up {result['speedup']:.2f}x over the faster "
          f"sequential; scheduling gap per task median {result['scheduling_gap_ms']['median']:.0f} ms (max "
          f"{result['scheduling_gap_ms']['max']:.0f} ms); start-up {result['startup_s']:.2f} s, end "
          f"{result['end_s']:.2f} s; empty-task round trip {noop_ms:.1f} ms")
    out = Path(__file__).with_name("out")
    out.mkdir(exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
