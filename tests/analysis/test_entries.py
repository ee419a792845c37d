"""Schedule entries and budgets: parsed once into typed values, with the labels compare shows."""

import pytest

import pdbviz
from pdbviz.analysis.entries import (AllocEntry, Budget, InvalidEntry, ScheduleEntry, entry_metrics, parse_entries,
                                     parse_entry, resolve_entries)

LENET = pdbviz.build_model("lenet", (1, 8, 8), 10)


@pytest.mark.parametrize("entry, kind, label", [
    ("float", ScheduleEntry, "float-32"),
    ("halving", ScheduleEntry, "8-4-2-1"),
    ("8-4-2-1", ScheduleEntry, "8-4-2-1"),
    ("dorefa:4", ScheduleEntry, "uniform 4-bit"),
    ("8-4-2-1/8-4-2-1", ScheduleEntry, "8-4-2-1/8-4-2-1"),
    ("symmetric:2", ScheduleEntry, "ternary"),
    (" alloc:1.5 ", AllocEntry, "allocated @ 1.5 bits"),
    ("alloc:40KiB", AllocEntry, "allocated @ 40KiB"),
    ("alloc:halving", AllocEntry, "allocated @ memory of 8-4-2-1"),
    ("alloc:symmetric:2", AllocEntry, "allocated @ memory of ternary"),
    ("alloc:kl:2e6 BOPs", AllocEntry, "allocated (kl) @ 2e6 BOPs"),
    ("alloc:hawq:2", AllocEntry, "allocated (hawq) @ 2 bits"),
])
def test_an_entry_parses_into_its_type_and_label(entry, kind, label):
    parsed = parse_entry(entry, LENET)
    assert type(parsed) is kind and parsed.label == label and parsed.text == entry.strip()
    assert parse_entry(parsed, LENET) is parsed  # parsed entries pass through
    with pytest.raises(AttributeError):
        parsed.label = "x"  # frozen


def test_allocated_entries_carry_a_typed_budget_and_metric():
    e = parse_entry("alloc:kl:2e6 BOPs", LENET)
    assert (e.metric, e.budget) == ("kl", Budget(2e6, "bops"))
    assert parse_entry("alloc:1.5 GBOPs".replace("alloc:", "alloc:hawq:"), LENET).budget == Budget(1.5e9, "bops")
    ref = pdbviz.memory_summary(LENET, pdbviz.BitSchedule.from_string("symmetric:2", LENET)).quantized_weight_kib
    e = parse_entry("alloc:symmetric:2", LENET)
    assert e.metric is None and e.budget == Budget(ref, "kib")
    assert entry_metrics(parse_entries(["alloc:kl:2", "4", "alloc:2", "alloc:hawq:3", "alloc:kl:4"], LENET)) == \
        ["kl", "hawq"]


@pytest.mark.parametrize("text, budget", [(1.5, Budget(1.5, "bits")), ("40 KiB", Budget(40, "kib")),
                                          ("2 bits", Budget(2, "bits")), ("3 kBOPs", Budget(3000, "bops")),
                                          (Budget(5, "latency"), Budget(5, "latency"))])
def test_budgets_parse_and_convert_without_text(text, budget):
    assert Budget.parse(text) == budget and budget.limits() == {budget.unit: budget.value}


def test_a_kib_budget_in_average_bits_is_exact():
    params = pdbviz.memory_summary(LENET).weight_params
    assert Budget(params * 2 / 8192, "kib").average_bits(LENET) == pytest.approx(2.0, rel=1e-15)
    with pytest.raises(ValueError, match="not a memory budget"):
        Budget(1e6, "bops").average_bits(LENET)


@pytest.mark.parametrize("make, message", [
    (lambda: Budget(0), "a budget must be a positive number of bits, got 0"),
    (lambda: Budget(2, "bytes"), r"unit must be one of \('bits', 'kib', 'bops', 'latency'\), got 'bytes'"),
    (lambda: Budget.parse("cheap"), "budget must be a positive number of average bits"),
    (lambda: parse_entry("alloc:0", LENET), "budget must be a positive number"),
    (lambda: parse_entry("alloc:nope:2", LENET), "unknown metric 'nope' in schedule entry 'alloc:nope:2'"),
    (lambda: parse_entry("alloc:2e6 BOPs", LENET), "the budget of 'alloc:2e6 BOPs' must be average bits"),
    (lambda: parse_entry("alloc:float", LENET), "'alloc:float': float-32 has no quantized memory to match"),
    (lambda: parse_entries(["2"], LENET, errors="ignore"), r"errors must be one of \('raise', 'keep'\)"),
])
def test_bad_entries_and_budgets_say_what_is_allowed(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_resolving_needs_the_measurements_and_keeps_going():
    import pandas as pd

    entries = parse_entries(["4", "alloc:2", "alloc:kl:2", "8-x"], LENET, errors="keep")
    assert isinstance(entries[3], InvalidEntry)
    profile = pd.DataFrame({"layer": ["conv1", "conv2", "fc1", "fc2", "fc3"], "fisher": [0.1, 1, 2, 4, 8]})
    out = resolve_entries(entries, LENET, profile, sensitivity=RuntimeError("boom"))
    assert [n.label for n, _ in out] == ["uniform 4-bit", "allocated @ 2 bits", "alloc:kl:2", "8-x"]
    assert [bool(e) for _, e in out] == [False, False, True, True]
    assert "measuring the sensitivity for 'alloc:kl:2' failed: RuntimeError: boom" in out[2][1]
    assert pdbviz.average_bits(LENET, out[1][0].schedule) <= 2


def test_an_entry_names_its_schedule_shape_and_kind_is_its_deprecated_name():
    from pdbviz import build_model
    from pdbviz.analysis.entries import parse_entry

    entry = parse_entry("halving", build_model("lenet"))
    assert entry.shape == "decreasing"
    with pytest.warns(DeprecationWarning, match=r"Entry.kind is deprecated; use Entry.shape"):
        assert entry.kind == "decreasing"
