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
    pg.bits.value = 1  # symmetric at 1 bit is binary: two levels
    assert pg.levels == 2 and pg.errors.widget.value == ""
    pg.quantizer.value = "LSQ weights"  # LSQ needs 2 bits: the slider starts there
    assert pg.bits.min == 2 and pg.bits.value == 2 and pg.levels == 4 and pg.errors.widget.value == ""
    pg.quantizer.value = "DoReFa activations"
    assert pg.bits.min == 1
    pg.bits.value = 1
    assert pg.errors.widget.value == "" and pg.levels == 2


def test_playground_axis_ticks_are_the_levels_drawn_after_every_move():
    import numpy as np

    from pdbviz.quant import WEIGHT_QUANTIZERS

    pg = QuantizerPlayground(n=600)
    assert set(pg.quantizer.options) >= {f"{cls.label} weights" for cls in WEIGHT_QUANTIZERS.values()}
    for label in pg.quantizer.options:
        pg.quantizer.value = label
        mode = pg.quantizers[label]
        for bits in range(pg.bits.min, 9):
            pg.bits.value = bits
            axis, steps = pg.figure.layout.yaxis2, np.unique(np.asarray(pg.figure.data[1].y, dtype=float))
            ticks = np.asarray(axis.tickvals, dtype=float)
            expected = 2**bits if mode == "activation" else WEIGHT_QUANTIZERS[mode].levels(bits)
            assert len(ticks) == expected == pg.levels, (label, bits)
            # every drawn step sits on a tick, the ticks are the quantizer's own grid, and the axis shows them all
            assert np.abs(steps[:, None] - ticks[None, :]).min(axis=1).max() < 1e-6 * max(1.0, abs(ticks).max())
            assert axis.range[0] < ticks.min() and axis.range[1] > ticks.max()
            assert pg.figure.layout.title.text == (f"{bits}-bit {label}: {expected} levels, {len(steps)} used")
            labelled = [i for i, t in enumerate(axis.ticktext) if t]
            assert 2 <= len(labelled) <= 9 and axis.ticktext[0] and axis.ticktext[-1]
            assert labelled == [len(ticks) - 1 - i for i in reversed(labelled)]  # symmetric about the middle
            assert len(labelled) == len(ticks) or min(np.diff(labelled)) >= 2  # no label crowds its neighbour
    pg.quantizer.value, pg.bits.value = "DoReFa weights", 3
    assert pg.figure.layout.title.text.startswith("3-bit DoReFa weights: 8 levels, ")


def test_allocator_sliders_presets_and_string(trained):
    model, data = trained
    ba = BitAllocator(model, data, epochs=1)
    assert ba.config.value == "8-4-2-1" and ba.float_accuracy > 80
    (line,), (note,) = ba.scatter.layout.shapes, ba.scatter.layout.annotations  # the float-32 reference
    assert line.y0 == line.y1 == ba.float_accuracy and line.line.width > 0 and line.opacity == 1
    assert note.text == f"float-32 {ba.float_accuracy:.2f}%" and note.xanchor == "right" and note.xshift < 0
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


def test_allocator_metric_front_budget_unit_and_bops(trained):
    from pdbviz.analysis import SENSITIVITY_METRICS

    model, data = trained
    ba = BitAllocator(model, data, epochs=1)
    assert tuple(ba.metric.options) == SENSITIVITY_METRICS and ba.metric.value == "fisher"
    assert ba.monotone.value and ba.budget_unit.value == "memory"
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
    ba.budget_unit.value = "bops"
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


def test_allocator_preset_says_custom_once_edited_and_layout_uses_the_width(trained):
    model, data = trained
    ba = BitAllocator(model, data, epochs=1)
    assert ba.preset.value == "halving"  # the sliders start at 8-4-2-1
    ba.w_sliders["conv1"].value = 1  # 1-4-2-1: no preset any more
    assert ba.preset.value == "custom" and ba.preset.label == "custom"
    ba.set_schedule("1-1-2-4-8")
    assert ba.preset.value == "increasing"
    ba.config.value = "4"
    assert ba.preset.value == "uniform" and ba.k.value == 4
    ba.config.value = "8-4-2-1"
    assert ba.preset.value == "halving"
    ba.preset.value = "custom"
    ba.apply_button.click()  # applying "custom" changes nothing
    assert ba.config.value == "8-4-2-1"
    # the budget toggle sits in a labelled row with the budget slider and the Allocate button
    row = next(box for box in ba.widget.children if ba.budget_unit in getattr(box, "children", ()))
    assert ba.budget in row.children and ba.allocate_button in row.children
    assert any("budget" in getattr(c, "value", "") for c in row.children) and not ba.budget_unit.description
    # both plots share the full width and size themselves to it; ticks are rounded
    grid = next(box for box in ba.widget.children if type(box).__name__ == "GridBox")
    assert grid.layout.width == "100%" and grid.layout.grid_template_columns == "minmax(0, 2fr) minmax(0, 3fr)"
    for fig in (ba.curve, ba.scatter):
        assert fig.layout.width is None and fig.layout.autosize
    assert ba.scatter.layout.yaxis.tickformat == ".1f" and ba.scatter.layout.yaxis2.tickformat == ".2~g"
    assert ba.curve.layout.yaxis.tickformat == ".2~f"
    # the right axes choose round ticks of their own instead of copying the left axis's grid
    assert ba.curve.layout.yaxis2.tickmode == "auto" and ba.scatter.layout.yaxis2.tickmode == "auto"


def test_allocator_run_labels_stay_inside_and_apart(trained):
    import pandas as pd

    from pdbviz.widgets.allocator import label_positions

    model, data = trained
    ba = BitAllocator(model, data, epochs=1)
    assert ba.wait(60)
    rows = [("8-4-2-1", 3.0, 98.6), ("1-1-2-4-8", 3.05, 98.65), ("2", 4.0, 99.9), ("1", 1.6, 96.2)]
    ba.runs = pd.DataFrame([{"run": i + 1, "schedule": s, "avg_bits": 1.0, "kib": k, "compression": 1.0,
                             "test_acc": a, "seconds": 1.0, "stopped": ""} for i, (s, k, a) in enumerate(rows)])
    ba._draw_runs()
    tr, layout = ba.scatter.data[0], ba.scatter.layout
    y0, y1 = layout.yaxis.range
    x0, x1 = layout.xaxis.range
    span = y1 - y0
    for x, y, pos in zip(tr.x, tr.y, tr.textposition):
        assert x0 < x < x1
        # a label above a point stays under the top of the plot, one below it above the bottom (8% of the height)
        assert y + (0.1 * span if pos.startswith("top") else 0) < y1
        assert y - (0.1 * span if pos.startswith("bottom") else 0) > y0
    assert ba.float_accuracy is None or y0 < ba.float_accuracy < y1
    # "#1" and "#2" sit close together: their labels go to different sides
    assert tr.textposition[0] != tr.textposition[1]
    assert label_positions([1.0, 1.0], [1.0, 1.0], (0, 2), (0, 2))[1] != "top center"


def test_dashboards_fall_back_to_static_figures_where_widgets_cannot_render(trained, monkeypatch):
    import sys

    import plotly.graph_objects as go

    from pdbviz.widgets import _common

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))  # as on Colab
    assert not _common.widget_figures_supported()
    pg = QuantizerPlayground(n=300)
    assert isinstance(pg.figure, _common.StaticFigure) and not isinstance(pg.figure.figure, go.FigureWidget)
    assert pg.figure.output in pg.widget.children  # a plain Output widget holds the drawing
    before = pg.figure.renders
    pg.bits.value = 3
    assert pg.figure.renders > before  # drawn again after the move, with the new levels
    assert pg.figure.layout.title.text.startswith("3-bit DoReFa weights: 8 levels")
    assert len(pg.figure.layout.yaxis2.tickvals) == 8
    model, data = trained
    ba = BitAllocator(model, data, epochs=1)
    assert isinstance(ba.scatter, _common.StaticFigure) and ba.wait(60)
    ba.set_schedule("2")
    assert ba.train() and ba.wait(60) and len(ba.scatter.data[0].x) == 1
    monkeypatch.delitem(sys.modules, "google.colab")
    monkeypatch.setenv(_common.STATIC_ENV, "1")
    assert not _common.widget_figures_supported()
    monkeypatch.setenv(_common.STATIC_ENV, "0")
    assert _common.widget_figures_supported()
