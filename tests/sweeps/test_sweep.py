"""pdbviz.sweep on a 2-process LocalCluster (127.0.0.1): same numbers as compare, streaming, resume, faults."""

import json
import os
import signal
import time
import types

import pytest
import torch
from torch import nn

import pdbviz
from pdbviz.sweeps import RunRecord, RunStore

distributed = pytest.importorskip("distributed")

SCHEDULES = ["float", "2", "alloc:1.5"]
FAST = dict(epochs=1, finetune_epochs=1, n_samples=100, profile_metrics=("fisher",), progress=False)


def _cluster(n=2, allowed_failures=3):
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": allowed_failures,
                          "distributed.scheduler.worker-saturation": 1.0}):
        # workers as a user would start them with: dask worker ADDRESS --nthreads 1 --resources "pdbviz_run=1"
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=None, resources={"pdbviz_run": 1})
    client = distributed.Client(cluster)
    client.wait_for_workers(n, timeout=600)
    return cluster, client


@pytest.fixture(scope="module")
def client():
    cluster, c = _cluster()
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def sequential():
    """compare's numbers with one torch thread, as every sweep worker runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return pdbviz.compare("digits", schedules=SCHEDULES, seeds=(0, 1), **FAST)
    finally:
        torch.set_num_threads(threads)


def _same_numbers(a, b):
    cols = ["schedule", "seed", "test_acc", "error", "correct"]  # per-image correctness included
    assert a.runs[cols].equals(b.runs[cols])
    assert a.history.drop(columns="seconds").equals(b.history.drop(columns="seconds"))
    assert a.profiles.equals(b.profiles)
    cols = ["schedule", "shape", "w_bits", "kib", "acc_mean", "acc_std", "n_seeds", "error"]
    assert a.table[cols].equals(b.table[cols])


def test_same_numbers_as_compare_on_one_worker_and_on_two(client, sequential, tmp_path):
    one = pdbviz.sweep("digits", schedules=SCHEDULES, seeds=(0, 1), out=tmp_path / "one", workers=1, **FAST)
    two = pdbviz.sweep("digits", schedules=SCHEDULES, seeds=(0, 1), out=tmp_path / "two", client=client, threads=1,
                       keep_models=True, **FAST)
    assert sequential.table.schedule.tolist() == ["float-32", "uniform 2-bit", "allocated @ 1.5 bits"]
    _same_numbers(sequential, one)
    _same_numbers(sequential, two)
    assert one.config["schedule_strings"] == sequential.config["schedule_strings"]
    # the models trained on the workers come back whole: same weights, same accuracy
    assert set(two.models) == set(sequential.models) and one.models == {}
    for key, q in two.models.items():
        ref = sequential.models[key]
        assert all(torch.equal(a, b) for a, b in zip(q.state_dict().values(), ref.state_dict().values()))
        assert 100 * pdbviz.evaluate(q, pdbviz.load_dataset("digits"))["accuracy"] == \
            two.runs.set_index(["schedule", "seed"]).test_acc[key]
    loaded = pdbviz.Results.load(tmp_path / "two")  # the folder holds the same Results as compare's
    assert loaded.runs.test_acc.tolist() == sequential.runs.test_acc.tolist()
    # one record per run: 2 floats + 2 schedules x 2 seeds; floats keep their model, the first seed its profile
    docs = [json.loads(p.read_text()) for p in (tmp_path / "two" / "runs").glob("*.json")]
    assert len(docs) == 6 and len({d["key"] for d in docs}) == 6
    assert sum(d["files"].get("model", "").endswith("model.pt") for d in docs) == 2
    assert sum("profile" in d["files"] for d in docs) == 3
    assert all(d["settings"]["data"]["name"] == "digits" and d["run"]["error"] == "" for d in docs)


def test_the_float_control_runs_as_in_compare_and_records_carry_their_correctness(client, tmp_path):
    from pdbviz.stats import decode_correct

    schedules = ["float", "float:long", "2"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = pdbviz.compare("digits", schedules=schedules, seeds=(0,), **FAST)
    finally:
        torch.set_num_threads(threads)
    events = []
    r = pdbviz.sweep("digits", schedules=schedules, seeds=(0,), out=tmp_path, client=client, threads=1,
                     on_result=events.append, **FAST)
    assert r.table.schedule.tolist() == ["float-32", "float-32 (+1 epoch)", "uniform 2-bit"]
    assert r.config["entries"]["float-32 (+1 epoch)"] == "float:long"
    _same_numbers(ref, r)
    by_label = {e.label: e for e in events}
    assert set(by_label) == set(r.table.schedule) and by_label["float-32 (+1 epoch)"].shape == "float"
    for e in events:
        c = decode_correct(e.correct)
        assert len(c) == 450 and c.mean() == pytest.approx(e.test_acc / 100, abs=1e-12)
    assert pdbviz.Results.load(tmp_path).runs.correct.tolist() == ref.runs.correct.tolist()


def test_interrupt_then_resume_runs_each_run_once(client, sequential, tmp_path):
    seen = []

    def stop_after_three(rec: RunRecord):
        seen.append(rec)
        if len(seen) == 3:
            raise KeyboardInterrupt  # as a Ctrl-C would, between two landed runs

    with pytest.raises(KeyboardInterrupt):
        pdbviz.sweep("digits", schedules=SCHEDULES, seeds=(0, 1), out=tmp_path, client=client, threads=1,
                     on_result=stop_after_three, **FAST)
    assert len(RunStore(tmp_path).keys()) == 3 and not list(tmp_path.glob("runs/.*.tmp"))
    again = []
    r = pdbviz.sweep("digits", schedules=SCHEDULES, seeds=(0, 1), out=tmp_path, client=client, threads=1,
                     on_result=again.append, **FAST)
    assert [x.resumed for x in again] == [True] * 3 + [False] * 3
    assert {x.key for x in again[:3]} == {x.key for x in seen}
    assert [x.done for x in again] == list(range(1, 7)) and {x.total for x in again} == {6}
    _same_numbers(sequential, r)
    # everything is done: no cluster is needed, not even a reachable scheduler
    third = []
    r3 = pdbviz.sweep("digits", schedules=SCHEDULES, seeds=(0, 1), out=tmp_path, client="tcp://127.0.0.1:9",
                      on_result=third.append, **FAST)
    assert len(third) == 6 and all(x.resumed for x in third)
    _same_numbers(sequential, r3)


def test_several_models_are_one_sweep_with_one_results_each(client, tmp_path):
    r = pdbviz.sweep(["digits"], model=["lenet", "mlp"], schedules=["2"], seeds=(0,), out=tmp_path, client=client,
                     threads=1, **FAST)
    assert sorted(r) == [("digits", "lenet"), ("digits", "mlp")]
    assert [r[k].runs.schedule.tolist() for k in sorted(r)] == [["uniform 2-bit"], ["uniform 2-bit"]]
    assert r[("digits", "lenet")].runs.test_acc[0] != r[("digits", "mlp")].runs.test_acc[0]
    for name in ("digits_lenet", "digits_mlp"):
        assert pdbviz.Results.load(tmp_path / name).config["model"] == name.split("_")[1]
    assert len(RunStore(tmp_path).keys()) == 4  # one runs/ folder: two floats, two fine-tunes


def test_a_half_written_record_is_redone_and_a_new_version_reruns(client, tmp_path, monkeypatch):
    kw = dict(schedules=["2"], seeds=(0,), out=tmp_path, client=client, threads=1, **FAST)
    pdbviz.sweep("digits", **kw)
    store = RunStore(tmp_path)
    first = store.keys()
    assert len(first) == 2
    victim = next(k for k in first if not store.read(k)["task"] == "float")
    (tmp_path / "runs" / f"{victim}.json").write_text('{"format": "pdbviz-sw')  # a torn write
    events = []
    pdbviz.sweep("digits", on_result=events.append, **kw)
    assert [(e.shape, e.resumed) for e in events] == [("float", True), ("uniform", False)]
    monkeypatch.setattr("pdbviz.sweeps.store.__version__", "99.0")
    events.clear()
    pdbviz.sweep("digits", on_result=events.append, **kw)
    assert [e.resumed for e in events] == [False, False] and not {e.key for e in events} & set(first)


class Flaky(nn.Module):
    """A small digits CNN whose training batches sleep ``delay`` s; inside a dask worker, a copy with
    ``kill_bits``-bit weights kills its own process and one with ``raise_bits``-bit weights raises."""

    def __init__(self, delay=0.0, kill_bits=None, raise_bits=None):
        super().__init__()
        self.delay, self.kill_bits, self.raise_bits = delay, kill_bits, raise_bits
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        if self.training:
            from pdbviz.quant.layers import weight_quant

            q = weight_quant(self.conv)
            bits = q.spec.w_bits if q is not None else 32
            try:
                distributed.get_worker()
                in_worker = True
            except ValueError:
                in_worker = False
            if in_worker and bits == self.kill_bits:
                os.kill(os.getpid(), signal.SIGKILL)
            if in_worker and bits == self.raise_bits:
                raise RuntimeError("flaky layer")
            time.sleep(self.delay)
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def test_dashboard_grows_live_and_a_click_loads_the_bits(client, tmp_path):
    from pdbviz.widgets import BitAllocator, SweepDashboard

    data = pdbviz.load_dataset("digits")
    ba = BitAllocator(pdbviz.build_model("lenet", data.input_shape, data.num_classes), data, epochs=1)
    dash = SweepDashboard(allocator=ba)
    seen = []
    dash.figure.data[0].on_change(lambda trace, x: seen.append(len(x)), "x")  # the plot redrawn as runs land
    assert dash.run("digits", schedules=["float", "2", "8-4-2-1"], seeds=(0,), out=tmp_path, client=client,
                    threads=1, **FAST)
    assert dash.wait(120) and dash.errors.last_error is None
    assert seen == [1, 2, 3] and dash.progress.value == dash.progress.max == 3
    assert dash.results.table.schedule.tolist() == ["float-32", "uniform 2-bit", "8-4-2-1"]
    labels = [p.label for p in dash.points]
    i = labels.index("8-4-2-1")
    assert list(dash.figure.data[0].y)[i] == pytest.approx(dash.results.table.acc_mean.iloc[2])
    dash._on_click(dash.figure.data[0], types.SimpleNamespace(point_inds=[i]), None)
    assert ba.config.value == "8-4-2-1" and dash.selected.label == "8-4-2-1"
    assert "8-4-2-1" in dash.details.value and len(dash.curve.data[0].y) == 1
    assert len(dash.figure.data[1].x) >= 1  # the frontier of the quantized runs
    with pytest.raises(ValueError, match="point index must be in 0..2"):
        dash.select(7)


def test_cli_sweep_writes_the_compare_report_and_resumes(client, tmp_path, capsys):
    from pdbviz.cli import main

    args = ["sweep", "--scheduler", client.scheduler.address, "--schedules", "float;2", "--epochs", "1",
            "--finetune-epochs", "1", "--no-static", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
    for name in ("report.html", "results.csv", "results.json", "table.tex", "runs.csv", "history.csv"):
        assert (tmp_path / name).is_file(), name
    first = sorted(p.name for p in (tmp_path / "runs").glob("*.json"))
    assert len(first) == 2 and "uniform 2-bit" in capsys.readouterr().out
    assert main(args) == 0  # everything resumed: the same records, nothing new
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.json")) == first


def test_a_worker_killed_mid_sweep_loses_nothing_and_records_nothing_twice(client, tmp_path):
    c = client  # its nanny restarts the killed worker, so the module's cluster stays usable
    killed = []

    def kill_a_busy_worker(rec):
        if killed or rec.shape == "float":  # once the schedule runs fill both workers
            return
        busy = [addr for addr, keys in c.processing().items() if keys]
        pids = c.run(os.getpid)
        if busy:
            killed.append(pids[busy[0]])
            os.kill(pids[busy[0]], signal.SIGKILL)

    events = []
    r = pdbviz.sweep("digits", model=Flaky(delay=0.03), schedules=["2", "4", "8", "8-4"], seeds=(0,), out=tmp_path,
                     client=c, threads=1, on_result=lambda e: (events.append(e), kill_a_busy_worker(e)), **FAST)
    pids_after = set(c.run(os.getpid).values())
    assert killed and killed[0] not in pids_after  # a worker really died (its nanny started a new one)
    assert len(events) == 5 and len({e.key for e in events}) == 5
    assert sorted(r.runs.schedule) == ["8-4", "uniform 2-bit", "uniform 4-bit", "uniform 8-bit"]
    assert (r.runs.error == "").all() and r.table.n_seeds.tolist() == [1, 1, 1, 1]
    assert len(list((tmp_path / "runs").glob("*.json"))) == 5


def test_a_run_that_kills_its_worker_is_recorded_failed_and_the_others_go_on(tmp_path):
    t0 = time.perf_counter()
    r = pdbviz.sweep("digits", model=Flaky(kill_bits=1, raise_bits=4), schedules=["float", "1", "4", "8"],
                     seeds=(0,), out=tmp_path, workers=2, retries=1, **FAST)
    err = dict(zip(r.table.schedule, r.table.error))
    assert "KilledWorker" in err["uniform 1-bit"] and "on 2 different workers" in err["uniform 1-bit"]  # retries=1
    assert err["uniform 4-bit"] == "RuntimeError: flaky layer"
    assert err["float-32"] == "" and err["uniform 8-bit"] == ""
    assert r.table.set_index("schedule").n_seeds.to_dict() == {"float-32": 1, "uniform 1-bit": 0,
                                                              "uniform 4-bit": 0, "uniform 8-bit": 1}
    docs = {d["label"]: d for d in map(json.loads, map(lambda p: p.read_text(), (tmp_path / "runs").glob("*.json")))}
    assert "KilledWorker" in docs["uniform 1-bit"]["run"]["error"] and len(docs) == 4
    assert time.perf_counter() - t0 < 120


def test_bad_arguments_name_the_parameter_and_start_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    cases = [
        (dict(workers=0), ValueError, r"workers must be a positive integer, got 0"),
        (dict(client=42), TypeError, r"client must be None .* got int"),
        (dict(client="tcp://127.0.0.1:9", workers=2), ValueError, r"workers=2 sizes the local cluster"),
        (dict(seeds=()), ValueError, r"seeds is empty"),
        (dict(seeds=(1, 1)), ValueError, r"seeds has duplicates"),
        (dict(retries=-1), ValueError, r"retries must be an integer >= 0, got -1"),
        (dict(threads=1.5), ValueError, r"threads must be a positive integer, got 1.5"),
        (dict(on_result="print"), TypeError, r"on_result must be a function"),
        (dict(out=tmp_path / "file"), ValueError, r"out must be a folder"),
        (dict(epochs=0), ValueError, r"epochs must be a positive integer, got 0"),
        (dict(device=0), TypeError, r"device must be 'auto', 'cpu', 'cuda' .* got int"),
        (dict(client=""), ValueError, r"client is an empty address"),
        (dict(data=42), TypeError, r"data must be a pdbviz Data, a dataset name"),
        (dict(model=["lenet", "lenet"]), ValueError, r"gives the pair \('digits', 'lenet'\) twice"),
        (dict(schedules=["float", "alloc:kl:2"]), ValueError, r"does not run 'alloc:METRIC:B' entries \(here kl\)"),
    ]
    for kwargs, exc, match in cases:
        kwargs = {"out": tmp_path / "out", **kwargs}
        with pytest.raises(exc, match=match):
            pdbviz.sweep(progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_missing_dask_names_the_extra(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "pdbviz\[dask\]"'):
        pdbviz.sweep(schedules=["2"], epochs=1, out=tmp_path, progress=False)


def test_sweep_is_a_function_with_its_own_signature_and_sweeps_holds_its_machinery():
    import inspect

    import pdbviz.sweeps

    assert inspect.isfunction(pdbviz.sweep) and pdbviz.sweep is pdbviz.sweeps.sweep
    params = inspect.signature(pdbviz.sweep).parameters
    assert list(params)[:3] == ["data", "model", "schedules"]
    assert {"out", "client", "workers", "retries", "on_result"} <= set(params) and "args" not in params
    assert params["out"].kind is inspect.Parameter.KEYWORD_ONLY and params["retries"].default == 2
    assert pdbviz.sweep.__module__ == "pdbviz.sweeps.core" and "sweep" in pdbviz.__all__
    assert pdbviz.sweeps.RunRecord.__module__ == "pdbviz.sweeps.plan"
