"""compare itself: entries parsed once, labels, the float row, failed runs, allocated entries."""

import inspect
import math

import pytest
import torch

import pdbviz
from pdbviz.analysis import entries as entries_module
from pdbviz.experiment import (AllocEntry, Budget, InvalidEntry, RunConfig, check_schedules, failed_record,
                               run_schedule)
from pdbviz.quant.presets import NamedSchedule

SCHEDULES = ["float", "2", "halving", "alloc:1.5", "alloc:hawq:2", "alloc:halving", "8-x"]
FAST = dict(epochs=1, finetune_epochs=1, n_samples=100, profile_metrics=("fisher",), progress=False)


@pytest.fixture(scope="module")
def data():
    return pdbviz.load_dataset("digits", train_subset=300)


@pytest.fixture(scope="module")
def traced(data):
    """A compare on a tiny LeNet, with every entry parse, budget parse and allocator call recorded."""
    calls = {"parse_entry": [], "parse_budget": [], "allocate_bits": [], "allocate": []}
    originals = {name: getattr(entries_module, name) for name in calls}

    def spy(name):
        def wrapped(*args, **kwargs):
            calls[name].append(args)
            return originals[name](*args, **kwargs)
        return wrapped

    mp = pytest.MonkeyPatch()
    for name in calls:
        mp.setattr(entries_module, name, spy(name))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = pdbviz.compare(data, schedules=SCHEDULES, seeds=(0,), **FAST)
    finally:
        torch.set_num_threads(threads)
        mp.undo()
    return results, calls


def test_each_entry_is_parsed_once_and_budgets_stay_numbers(traced):
    results, calls = traced
    parsed = [args[0] for args in calls["parse_entry"]]
    assert sorted(parsed) == sorted(SCHEDULES)  # once each, "alloc:hawq:2" included
    # only the budgets given as text or numbers are parsed; the memory of 8-4-2-1 is a number from the start
    assert [args[0] for args in calls["parse_budget"]] == [1.5, 2.0]
    assert all(isinstance(args[2], float) for args in calls["allocate_bits"]) and len(calls["allocate_bits"]) == 2
    assert [args[2] for args in calls["allocate"]] == [{"bits": 2.0}]


def test_labels_shapes_and_the_float_row(traced, data):
    t = traced[0].table.set_index("schedule")
    assert t.index.tolist() == ["float-32", "uniform 2-bit", "8-4-2-1", "allocated @ 1.5 bits",
                                "allocated (hawq) @ 2 bits", "allocated @ memory of 8-4-2-1", "8-x"]
    assert t["shape"].tolist() == ["float", "uniform", "decreasing", "allocated", "allocated", "allocated", "custom"]
    template = pdbviz.build_model("lenet", data.input_shape, data.num_classes)
    flt = t.loc["float-32"]
    assert set(flt.w_bits.split("-")) == {"32"} and flt.avg_bits == 32 and flt.compression == 1
    assert flt.kib == pytest.approx(pdbviz.memory_summary(template).quantized_weight_kib)
    assert flt.n_seeds == 1 and 0 < flt.acc_mean <= 100 and flt.error == ""
    config = traced[0].config
    assert config["entries"]["allocated @ memory of 8-4-2-1"] == "alloc:halving"
    assert config["schedule_strings"]["float-32"] == "float" and config["dataset"] == "digits"


def test_a_bad_entry_is_recorded_and_the_others_run(traced):
    r = traced[0]
    bad = r.table.set_index("schedule").loc["8-x"]
    assert "cannot parse" in bad.error and bad.n_seeds == 0 and math.isnan(bad.acc_mean)
    assert (r.table.error[r.table.schedule != "8-x"] == "").all()
    assert "8-x" not in set(r.runs.schedule) and len(r.runs) == 6


def test_allocated_entries_meet_their_budgets(traced, data):
    t = traced[0].table.set_index("schedule")
    template = pdbviz.build_model("lenet", data.input_shape, data.num_classes)
    halving = pdbviz.memory_summary(template, pdbviz.BitSchedule.decreasing(template, 8, 1))
    assert t.loc["allocated @ 1.5 bits"].avg_bits <= 1.5
    assert t.loc["allocated (hawq) @ 2 bits"].avg_bits <= 2
    assert t.loc["allocated @ memory of 8-4-2-1"].kib <= halving.quantized_weight_kib * (1 + 1e-12)
    # the budget is the reference's memory exactly, not a rounded text
    entry = check_schedules(["alloc:halving"], template)[0]
    assert isinstance(entry, AllocEntry) and entry.budget == Budget(halving.quantized_weight_kib, "kib")


def test_compare_takes_entries_parsed_beforehand(data):
    template = pdbviz.build_model("lenet", data.input_shape, data.num_classes)
    parsed = check_schedules(["float", "4"], template)
    r = pdbviz.compare(data, schedules=parsed, seeds=(0,), **FAST)
    assert r.table.schedule.tolist() == ["float-32", "uniform 4-bit"]
    without_float = pdbviz.compare(data, schedules=parsed[1:], seeds=(0,), **FAST)
    assert without_float.table.schedule.tolist() == ["uniform 4-bit"]
    assert set(without_float.runs.schedule) == {"uniform 4-bit"}  # float runs are trained, not shown


def test_a_failing_run_is_a_record_not_an_exception(data):
    lenet = pdbviz.build_model("lenet", data.input_shape, data.num_classes)
    foreign = NamedSchedule("4", "uniform 4-bit", "uniform", pdbviz.BitSchedule.uniform(["nosuch"], 4))
    rec = run_schedule(foreign, 3, data, RunConfig(epochs=1), lenet)
    assert rec["model"] is None and rec["history"] is None and math.isnan(rec["run"]["test_acc"])
    assert rec["run"]["seed"] == 3 and rec["run"]["error"].startswith("ValueError: ")
    assert "nosuch" in rec["run"]["error"]
    assert failed_record("x", 0, KeyError("k"))["run"]["error"] == "KeyError: 'k'"


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=0), "epochs must be a positive integer, got 0"),
    (dict(finetune_epochs=1.5), "finetune_epochs must be a positive integer, got 1.5"),
    (dict(lr=-1), "lr must be a positive number, got -1"),
    (dict(width=0), "width must be a positive number, got 0"),
    (dict(batch_size=True), "batch_size must be a positive integer, got True"),
    (dict(schedules=[]), "schedules is empty"),
])
def test_bad_arguments_fail_before_training(kwargs, message, monkeypatch):
    import pdbviz.experiment.comparison as comparison

    monkeypatch.setattr(comparison, "train_float", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match=message):
        pdbviz.compare("digits", progress=False, **kwargs)


def test_compare_keeps_its_signature():
    params = inspect.signature(pdbviz.compare).parameters
    assert list(params)[:5] == ["data", "model", "schedules", "epochs", "seeds"] and params["epochs"].default == 20


def test_invalid_entries_keep_their_error():
    template = pdbviz.build_model("lenet", (1, 8, 8), 10)
    kept = pdbviz.experiment.parse_entries(["2", "alloc:nope:2", 7], template, errors="keep")
    assert [type(e).__name__ for e in kept] == ["ScheduleEntry", "InvalidEntry", "InvalidEntry"]
    assert isinstance(kept[1], InvalidEntry) and "unknown metric 'nope'" in kept[1].error
    assert kept[2].label == "7" and kept[2].error.startswith("TypeError: each schedule must be a string")


# -- per-image correctness and the float control -------------------------------------------------------------------
CONTROL = ["float", "float:long", "1", "halving", "increasing", "alloc:halving"]


@pytest.fixture(scope="module")
def controlled(data):
    """Two seeds of a tiny LeNet with the float control, trained 1 epoch and fine-tuned 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return pdbviz.compare(data, schedules=CONTROL, seeds=(0, 1), **FAST)
    finally:
        torch.set_num_threads(threads)


def test_each_run_records_its_per_image_correctness_in_test_order(controlled, data):
    from pdbviz.claims import accuracy_ci95
    from pdbviz.experiment import test_correct
    from pdbviz.stats import decode_correct

    r = controlled
    assert len(r.runs) == 2 * len(CONTROL) and (r.runs.error == "").all()
    for row in r.runs.itertuples():
        c = decode_correct(row.correct)
        assert c.dtype == bool and len(c) == len(data.test) == r.config["n_test"]
        assert c.mean() == pytest.approx(row.test_acc / 100, abs=1e-12)
    # the vector is the model's, image by image, in the test split's order
    model = r.models[("8-4-2-1", 1)]
    labels = torch.cat([y for _, y in data.test.batches(4096)])
    preds = model.eval()(torch.cat([x for x, _ in data.test.batches(4096)])).argmax(1)
    stored = decode_correct(r.runs.set_index(["schedule", "seed"]).correct[("8-4-2-1", 1)])
    assert (stored == (preds == labels).numpy()).all() and (test_correct(model, data) == stored).all()
    # the table's interval is the seeds x images one on those vectors
    row = r.table.set_index("schedule").loc["8-4-2-1"]
    runs = r.runs[r.runs.schedule == "8-4-2-1"]
    assert row.acc_ci95 == pytest.approx(accuracy_ci95(runs.test_acc, 450, correct=runs.correct.tolist()))
    assert row.acc_ci95 != pytest.approx(accuracy_ci95(runs.test_acc, 450))


def test_the_float_control_trains_as_long_as_the_quantized_runs(controlled, data):
    from pdbviz.experiment import DEFAULT_SCHEDULES, float_control_label

    r = controlled
    assert "float:long" in DEFAULT_SCHEDULES
    label = float_control_label(RunConfig(epochs=1, finetune_epochs=1))
    assert label == "float-32 (+1 epoch)"
    assert float_control_label(RunConfig(finetune_epochs=3)) == "float-32 (+3 epochs)"
    t = r.table.set_index("schedule")
    assert t.index.tolist()[:2] == ["float-32", label] and t["shape"][label] == "float"
    assert t.w_bits[label] == t.w_bits["float-32"] and t.kib[label] == t.kib["float-32"] and t.n_seeds[label] == 2
    assert r.config["entries"][label] == "float:long"
    # fine-tuned from the float model of its seed for finetune_epochs, like every quantized run
    for seed in (0, 1):
        h = r.history[(r.history.schedule == label) & (r.history.seed == seed)]
        assert len(h) == 1
        flt, long = r.models[("float-32", seed)], r.models[(label, seed)]
        assert not all(torch.equal(a, b) for a, b in zip(flt.state_dict().values(), long.state_dict().values()))
        assert 100 * pdbviz.evaluate(flt, data)["accuracy"] == \
            r.runs.set_index(["schedule", "seed"]).test_acc[("float-32", seed)]  # the float model was not changed


def test_the_float_control_from_scratch_trains_epochs_and_leaves_the_float_model_alone(data):
    from pdbviz.analysis.entries import parse_entry

    entry = parse_entry("float:long", pdbviz.build_model("lenet"))
    named = NamedSchedule("float:long", "float-32 (from scratch, 1 epoch)", "float", None)
    assert entry.is_float_control and entry.named().entry == "float:long"
    rec = run_schedule(named, 0, data, RunConfig(epochs=1, finetune=False), None, "lenet")
    assert rec["run"]["error"] == "" and len(rec["history"]) == 1 and rec["run"]["correct"].startswith("450:")
    assert failed_record("x", 0, RuntimeError("boom"))["run"]["correct"] == ""


def test_the_claims_name_the_float_control_and_identical_schedules_are_not_testable(controlled):
    r = controlled
    claims = r.claims().set_index("claim")
    assert claims.float_run.iloc[0].startswith("float-32 (+1 epoch)") and \
        "trained as long as the quantized runs" in claims.float_run.iloc[0]
    assert claims.method["ii"] == "seeds x images"  # the paired interval on the runs' per-image correctness
    alloc = r.label_of("alloc:halving")
    strings = r.config["schedule_strings"]
    assert (claims.verdict["iv"] == "not testable") == (strings[alloc] == strings["8-4-2-1"])
    # the same schedule under two labels, as when the allocator returns 8-4-2-1 itself
    same = pdbviz.Results(r.table, r.runs, r.history, r.profiles,
                          {**r.config, "schedule_strings": {**strings, alloc: strings["8-4-2-1"]}}, r.schedules)
    iv = same.claims().set_index("claim").loc["iv"]
    assert iv.verdict == "not testable" and "same schedule" in iv.conclusion and math.isnan(iv.effect)
