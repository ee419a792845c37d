import types

import pytest

import pdbviz
from pdbviz.widgets import BitAllocator, QuantizerPlayground, SeparabilityExplorer


def test_playground_updates_figure_and_readouts(trained):
    model, _ = trained
    pg = QuantizerPlayground(model)
    pg.bits.value = 2
    assert pg.levels == 4 and "<b>4</b> levels" in pg.readout.value
    db2, x_before = pg.sqnr_db, list(pg.figure.data[1].y)
    pg.bits.value = 6
    assert pg.levels > 4 and pg.sqnr_db > db2 and list(pg.figure.data[1].y) != x_before
    assert "6-bit" in pg.figure.layout.title.text
    pg.quantizer.value = "symmetric weights"
    pg.bits.value = 2
    assert pg.levels == 3
    pg.distribution.value = "layer fc1"
    assert len(pg.figure.data[0].x) == model.fc1.weight.numel()
    pg.bits.value = 1  # symmetric needs 2 bits: shown in the widget, not raised
    assert "at least 2 bits" in pg.errors.widget.value and pg.errors.last_error is not None
    pg.quantizer.value = "DoReFa activations"
    assert pg.errors.widget.value == "" and pg.levels == 2


def test_allocator_sliders_presets_and_string(trained):
    model, data = trained
    ba = BitAllocator(model, data, epochs=1)
    assert ba.config.value == "8-4-2-1" and ba.float_accuracy > 80
    kib_before = ba.readout.value
    ba.w_sliders["fc1"].value = 8
    assert ba.config.value == "8-4-8-1" and ba.readout.value != kib_before
    s = pdbviz.memory_summary(model, ba.schedule())
    assert f"{s.quantized_weight_kib:,.2f} KiB" in ba.readout.value and "fc1" in ba.table.value
    assert ba.last_readout_ms < 1000
    assert [label for label, _ in ba.preset.options][1:4] == ["8-4-2-1", "linear 8→1", "increasing 1→8"]
    ba.preset.value, ba.k.value = "uniform", 4
    ba.apply_button.click()
    assert [sl.value for sl in ba.w_sliders.values()] == [4] * 5
    ba.preset.value = "increasing"
    ba.apply_button.click()
    assert ba.schedule().w_bits == [1, 1, 2, 4, 8]
    ba.preset.value, ba.budget.value = "alloc", 1.5
    ba.apply_button.click()
    assert pdbviz.average_bits(model, ba.schedule()) <= 1.5
    ba.config.value = "2/4"  # pasted one-line schedule
    assert ba.schedule().w_bits == [2] * 5 and [s.value for s in ba.a_sliders.values()] == [32, 4, 4, 4, 4]
    assert ba.a_sliders["conv1"].disabled  # the network input stays float
    ba.config.value = "8-x"
    assert "token 'x'" in ba.errors.widget.value.replace("&#x27;", "'")
    assert ba.schedule().w_bits == [2] * 5  # a bad string changes nothing


def test_allocator_train_history_scatter_and_click(trained):
    model, data = trained
    ba = BitAllocator(model, data, epochs=1)
    ba.set_schedule("8-4-2-1")
    assert ba.train()
    assert ba.wait(60)
    assert len(ba.runs) == 1 and ba.runs.schedule.tolist() == ["8-4-2-1"]
    assert list(ba.scatter.data[0].x) == [pytest.approx(ba.runs.kib.iloc[0])]
    assert "8-4-2-1" in ba.history_table.value and ba.progress.value == ba.progress.max
    assert len(ba.curve.data[0].y) > 0 and len(ba.curve.data[1].y) == 1
    ba.set_schedule("2")
    ba.train()
    ba.wait(60)
    assert ba.runs.schedule.tolist() == ["8-4-2-1", "2"] and len(ba.scatter.data[0].x) == 2
    # clicking the first point loads its bits back
    ba._on_click(ba.scatter.data[0], types.SimpleNamespace(point_inds=[0]), None)
    assert ba.config.value == "8-4-2-1"
    with pytest.raises(ValueError, match="run index must be in 0..1"):
        ba.select_run(5)
    # training the same schedule again adds a run, not a point: the point is the mean over its runs
    ba.train()
    ba.wait(60)
    assert len(ba.runs) == 3 and len(ba.scatter.data[0].x) == 2
    first = ba.runs[ba.runs.schedule == "8-4-2-1"]
    assert ba.scatter.data[0].y[0] == pytest.approx(first.test_acc.mean())
    assert ba.scatter.data[0].text[0] == "#3 (n=2)"


def test_allocator_stop_button_keeps_a_consistent_run(trained):
    model, data = trained
    ba = BitAllocator(model, data, epochs=50)
    ba.train()
    ba.stop_button.click()
    assert ba.wait(60)
    assert len(ba.runs) == 1 and ba.runs.stopped.iloc[0] == "stopped by the user"
    # a stopped run is drawn apart, as partial, never averaged with complete ones
    assert len(ba.scatter.data[0].x) == 0 and len(ba.scatter.data[1].x) == 1
    assert "partial" in ba.scatter.data[1].name
    assert not ba.train_button.disabled and ba.stop_button.disabled


def test_allocator_from_a_name_trains_float_in_background():
    ba = BitAllocator("mlp", "digits", float_epochs=1, epochs=1)
    assert ba.wait(60) and ba.float_accuracy is not None and not ba.train_button.disabled


def test_errors_in_training_are_shown_in_the_widget(trained):
    model, data = trained
    ba = BitAllocator(model, data, epochs=1, lr=-1.0)
    ba.train()
    ba.wait(30)
    assert "lr must be a positive number" in ba.errors.widget.value and len(ba.runs) == 0


@pytest.mark.slow
def test_explorer_embeds_in_background_and_follows_the_slider(trained):
    model, data = trained
    ex = SeparabilityExplorer(model, data, n_samples=150)
    assert ex.wait(180) and ex.status.value == "ready" and ex.progress.value == len(ex.layers)
    ex.layer.value = "fc2"
    assert "fc2" in ex.scatter.layout.title.text
    assert sum(len(tr.x) for tr in ex.scatter.data) == 150
    assert list(ex.profile_fig.data[-1].x) == ["fc2"]
    ex.metric.value = "probe"
    assert ex.profile_fig.layout.yaxis.title.text == "linear-probe accuracy"
    assert list(ex.profile_fig.data[0].y) == ex.profile.probe.tolist()


def test_allocator_metric_front_budget_kind_and_bops(trained):
    from pdbviz.analysis import SENSITIVITY_METRICS

    model, data = trained
    ba = BitAllocator(model, data, epochs=1)
    assert tuple(ba.metric.options) == SENSITIVITY_METRICS and ba.metric.value == "fisher"
    assert ba.monotone.value and ba.budget_kind.value == "memory"
    s = pdbviz.memory_summary(model, ba.schedule())
    assert f"<b>{s.bops / 1e6:,.2f} MBOPs</b> per sample" in ba.readout.value
    # the default front: measured in the background once the float model is ready, on its own axis
    assert ba.wait(60) and ba.front_key == ("fisher", "memory", True)
    tr = ba.scatter.data[2]
    assert tr.yaxis == "y2" and ba.scatter.layout.yaxis2.title.text == "predicted loss increase"
    assert ba.scatter.layout.yaxis.title.text == "test accuracy (%)"
    assert len(tr.x) == len(ba.front.table) > 3 and tr.visible
    assert list(tr.x) == pytest.approx(ba.front.table.weight_kib.tolist())
    assert list(tr.y) == pytest.approx(ba.front.table.loss.tolist())
    # ... whose choice at a budget is the separability allocation
    profile = pdbviz.separability_profile(model, data, metrics=("fisher",), seed=0)
    ba.preset.value, ba.budget.value = "alloc", 1.5
    ba.apply_button.click()
    assert ba.config.value == pdbviz.allocate_bits(profile, model, 1.5).to_string(model)
    # clicking a front point loads its bits
    ba._on_click(tr, types.SimpleNamespace(point_inds=[3]), None)
    assert ba.config.value == ba.front.schedule(3).to_string(model) == tr.customdata[3]
    # another metric: measured in the background, the allocation follows
    ba.metric.value = "kl"
    assert ba.allocate() is False and "measuring kl" in ba.status.value
    assert ba.wait(60) and ba.front_key == ("kl", "memory", True) and "kl" in tr.name
    assert ba.config.value == ba.front.choose("1.5 bits").to_string(model)
    # the budget kind switches the front's cost to BOPs
    ba.monotone.value = False
    ba.budget_kind.value = "bops"
    assert ba.wait(60) and ba.front_key == ("kl", "bops", False) and ba.front.primary == "bops"
    assert ba.bops_budget.layout.display is None and ba.budget.layout.display == "none"
    assert len(tr.x) == len(ba.front.table) and "BOPs" in tr.name
    by_memory = ba.fronts.front("kl", "memory", False).table
    assert ba.front.table.bops.is_monotonic_increasing and by_memory.weight_kib.is_monotonic_increasing
    assert sorted(map(tuple, ba.front.table.w_bits)) != sorted(map(tuple, by_memory.w_bits))
    ba.bops_budget.value = (ba.bops_budget.min + ba.bops_budget.max) / 3
    ba.allocate_button.click()
    assert pdbviz.memory_summary(model, ba.schedule()).bops <= ba.bops_budget.value * 1e6
    assert ba.config.value == ba.front.choose({"bops": ba.bops_budget.value * 1e6}).to_string(model)
    with pytest.raises(ValueError, match="metric must be one of fisher, probe"):
        BitAllocator(model, data, metric="nope")
