import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

import pdbviz
from pdbviz import Results, compare, plot


@pytest.fixture(scope="module")
def results():
    return compare("digits", schedules=["float", "1", "8-4-2-1", "increasing", "alloc:1.5", "8-x"], epochs=2,
                   finetune_epochs=1, seeds=(0, 1), progress=False, n_samples=200)


def test_results_table(results):
    t = results.table
    assert t.schedule.tolist() == ["float-32", "uniform 1-bit", "8-4-2-1", "increasing 1→8", "allocated @ 1.5 bits", "8-x"]
    assert t["shape"].tolist() == ["float", "uniform", "decreasing", "increasing", "allocated", "custom"]
    row = t.set_index("schedule").loc["8-4-2-1"]
    assert row.w_bits == "8-4-2-1-1" and row.a_bits == "32-32-32-32-32"
    model = pdbviz.build_model("lenet", (1, 8, 8), 10)
    s = pdbviz.memory_summary(model, pdbviz.BitSchedule.from_string("8-4-2-1", model))
    assert row.kib == pytest.approx(s.quantized_weight_kib) and row.avg_bits == pytest.approx(s.avg_bits)
    assert row.compression == pytest.approx(32 / s.avg_bits)
    runs = results.runs[results.runs.schedule == "8-4-2-1"].test_acc
    assert row.acc_mean == pytest.approx(runs.mean()) and row.acc_std == pytest.approx(runs.std())
    assert row.n_seeds == 2 and 50 < row.acc_mean <= 100
    assert t.set_index("schedule").loc["allocated @ 1.5 bits"].avg_bits <= 1.5
    # the failing schedule is recorded, the others kept
    bad = t.set_index("schedule").loc["8-x"]
    assert "cannot parse" in bad.error and bad.n_seeds == 0
    assert (t.error[t.schedule != "8-x"] == "").all()
    assert set(results.history.schedule) == {"float-32", "uniform 1-bit", "8-4-2-1", "increasing 1→8",
                                             "allocated @ 1.5 bits"}
    assert set(results.profiles.schedule) == set(results.history.schedule)
    assert ("8-4-2-1", 1) in results.models


def test_from_scratch_and_bad_arguments():
    r = compare("digits", schedules=["2"], epochs=1, finetune=False, progress=False, n_samples=100)
    assert r.table.n_seeds.tolist() == [1] and r.config["finetune"] is False
    with pytest.raises(ValueError, match="seeds is empty"):
        compare("digits", seeds=(), progress=False)
    with pytest.raises(ValueError, match="unknown dataset name"):
        compare("digitz", progress=False)



def test_compare_allocates_by_a_named_metric():
    from pdbviz.analysis import allocate, predicted_loss, sensitivity_metrics

    data = pdbviz.load_dataset("digits", train_subset=600)
    r = compare(data, schedules=["float", "alloc:hawq:2", "alloc:kl:halving", "alloc:nope:2"], epochs=1,
                finetune_epochs=1, progress=False, n_samples=100, profile_metrics=("fisher",))
    t = r.table.set_index("schedule")
    assert t.index.tolist() == ["float-32", "allocated (hawq) @ 2 bits", "allocated (kl) @ memory of 8-4-2-1",
                                "alloc:nope:2"]
    assert t["shape"].tolist()[1:3] == ["allocated", "allocated"] and (t.error.iloc[:3] == "").all()
    model = r.models[("float-32", 0)]
    halving = pdbviz.memory_summary(model, pdbviz.BitSchedule.decreasing(model, 8, 1)).quantized_weight_kib
    assert t.loc["allocated (hawq) @ 2 bits"].avg_bits <= 2
    assert t.loc["allocated (kl) @ memory of 8-4-2-1"].kib <= halving
    # the schedule is the least predicted loss within the budget, from the metric measured on the float model
    frame = sensitivity_metrics(model, data, metrics=["hawq"], bits=(1, 2, 4, 8), n_samples=100, seed=0)
    expected = allocate(model, predicted_loss(frame, "hawq", w_bits=(1, 2, 4, 8), a_bits=(32,)), 2.0)
    assert r.config["schedule_strings"]["allocated (hawq) @ 2 bits"] == expected.to_string(model)
    assert "unknown metric 'nope'" in t.loc["alloc:nope:2"].error and "available: fisher, probe" in \
        t.loc["alloc:nope:2"].error


def test_allocation_entries_are_checked_before_training():
    from pdbviz.experiment import check_schedules, resolve_schedule

    model = pdbviz.build_model("lenet", (1, 8, 8), 10)
    check_schedules(["alloc:1.5", "alloc:hawq:2", "alloc:kl:40KiB", "alloc:sqnr:halving", "alloc:kl:2e6 BOPs",
                     "alloc:symmetric:2"], model)
    with pytest.raises(ValueError, match=r"unknown metric 'hawk' .*available: fisher, probe, knn, silhouette, hawq"):
        check_schedules(["float", "alloc:hawk:2"], model)
    with pytest.raises(ValueError, match=r"the budget of 'alloc:kl:lots' must be average bits \(alloc:kl:1.5\)"):
        check_schedules(["alloc:kl:lots"], model)
    with pytest.raises(ValueError, match="the budget of 'alloc:2e6 BOPs' must be"):  # separability: memory only
        check_schedules(["alloc:2e6 BOPs"], model)
    with pytest.raises(ValueError, match="needs the float model's 'kl' sensitivity"):
        resolve_schedule("alloc:kl:2", model)
    assert resolve_schedule("alloc:symmetric:2", model, pd.DataFrame(
        {"layer": ["conv1", "conv2", "fc1", "fc2", "fc3"], "fisher": [0.1, 1, 2, 4, 8]})).label == \
        "allocated @ memory of ternary"

def test_results_save_load_and_latex(results, tmp_path):
    results.save(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["history.csv", "profiles.csv", "results.csv", "results.json", "runs.csv"]
    back = Results.load(tmp_path)
    pd.testing.assert_frame_equal(back.table, results.table, check_dtype=False)
    assert back.config == json.loads(json.dumps(results.config))
    assert back.schedules["8-4-2-1"]["layers"][0]["w_bits"] == 8
    tex = results.to_latex()
    assert tex.startswith("\\begin{table}") and "\\toprule" in tex and "\\bottomrule" in tex
    assert "increasing 1$\\to$8" in tex and "allocated @ 1.5 bits" in tex and "\\textbf{" in tex
    assert tex.count("\\\\\n") == len(results.table) + 1
    old = pd.read_csv(tmp_path / "results.csv").rename(columns={"shape": "kind"})  # a folder saved before the rename
    old.to_csv(tmp_path / "results.csv", index=False)
    pd.testing.assert_frame_equal(Results.load(tmp_path).table, back.table)
    doc = json.loads((tmp_path / "results.json").read_text())
    doc["format_version"] = 7
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="format_version 7"):
        Results.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="no results.json"):
        Results.load(tmp_path / "none")


def test_pareto_frontier():
    assert plot.pareto_frontier([1, 2, 3, 4], [90, 85, 95, 94]) == [0, 2]
    assert plot.pareto_frontier([3, 1, 2], [1.0, 1.0, 2.0]) == [1, 2]


def test_figures_traces_and_axes(results):
    t = results.table
    fig = plot.pareto_figure(t)
    assert isinstance(fig, go.Figure)
    names = [tr.name for tr in fig.data]
    ok = t[t.error == ""]
    assert names[:4] == ok.schedule.tolist()[1:5]  # one legend entry per schedule, in words
    assert "homogeneous frontier" in names and any(n.startswith("float-32") for n in names)
    symbols = {tr.name: tr.marker.symbol for tr in fig.data[:4]}
    assert symbols["uniform 1-bit"] == "circle" and symbols["8-4-2-1"] == "triangle-down"
    errors = {tr.name: tr.error_y.array[0] for tr in fig.data[:4]}
    assert errors["8-4-2-1"] == pytest.approx(ok.set_index("schedule").acc_ci95["8-4-2-1"])
    assert fig.layout.xaxis.type == "log" and "KiB" in fig.layout.xaxis.title.text
    assert all(float(text) == v for text, v in zip(fig.layout.xaxis.ticktext, fig.layout.xaxis.tickvals))
    assert fig.layout.width == plot.PAPER["width"]

    fig = plot.bits_figure(t, results.config["layers"])
    hm = fig.data[0]
    assert list(hm.y) == t.schedule.tolist()[:-1]  # the failed schedule has no bits
    assert list(hm.x) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert hm.text[2] == [8, 4, 2, 1, 1]

    prof = results.profiles
    fig = plot.profile_figure(prof, metric="fisher", schedule={"conv1": 8, "conv2": 4})
    bars = [tr for tr in fig.data if tr.type == "bar"]
    lines = [tr for tr in fig.data if tr.type == "scatter"]
    assert len(bars) == 1 and list(bars[0].y) == [8, 4] and bars[0].yaxis == "y2"
    assert len(lines) == prof.schedule.nunique()
    assert fig.layout.yaxis.type == "log"

    fig = plot.training_curves(results.history)
    lines = [tr for tr in fig.data if tr.showlegend is not False]
    bands = [tr for tr in fig.data if tr.fill == "toself"]  # one band per schedule: two seeds
    assert len(lines) == len(bands) == results.history.schedule.nunique()
    fig.data = tuple(lines)
    assert max(fig.data[0].y) <= 100 and fig.layout.xaxis.title.text == "epoch"
    with pytest.raises(ValueError, match="lacks columns \\['acc_mean'"):
        plot.pareto_figure(t.drop(columns="acc_mean"))


def test_figures_at_print_size_have_readable_fonts(results, tmp_path):
    for fig in (plot.pareto_figure(results.table), plot.training_curves(results.history),
                plot.profile_figure(results.profiles, metric="fisher")):
        shrunk = plot.smallest_font_pt(fig) * 3.5 * 96 / fig.layout.width
        assert shrunk < 7  # the screen layout merely shrunk to a column would be unreadable
        for size, width in (("column", 3.5), ("page", 7.0)):
            printed = plot.for_print(fig, size)
            assert printed.layout.width == round(width * 96)
            assert plot.smallest_font_pt(printed) >= 7
        assert plot.smallest_font_pt(plot.for_print(fig, "slide", "slides")) >= 16
    with pytest.raises(ValueError, match="size must be one of .*column"):
        plot.for_print(plot.pareto_figure(results.table), "poster")
    with pytest.raises(ValueError, match="needs a print theme"):
        plot.for_print(plot.pareto_figure(results.table), "column", "screen")


def test_log_ticks_are_written_in_full():
    from pdbviz.plot.figures import log_ticks

    assert log_ticks(3, 40)[1] == ["2", "5", "10", "20", "50"]
    assert log_ticks(10, 40)[1] == ["10", "20", "30", "50"]
    assert log_ticks(1, 5000)[1] == ["1", "10", "100", "1000", "10000"]


def test_umap_memory_staircase_and_error_figures():
    emb = pd.DataFrame({"layer": ["a"] * 4 + ["b"] * 4, "depth": [0] * 4 + [1] * 4, "label": [0, 1, 0, 1] * 2,
                        "x": np.arange(8.0), "y": np.arange(8.0), "sample": list(range(4)) * 2})
    fig = plot.umap_grid(emb, classes=["zero", "one"])
    assert len(fig.data) == 4 and [tr.name for tr in fig.data[:2]] == ["zero", "one"]
    assert [a.text for a in fig.layout.annotations] == ["a", "b"]
    assert sum(tr.showlegend for tr in fig.data) == 2

    model = pdbviz.build_model("lenet")
    tables = {"2": pdbviz.memory_table(model, pdbviz.BitSchedule.uniform(model, 2))}
    fig = plot.memory_figure(tables)
    assert list(fig.data[0].y) == tables["2"].weight_kib.tolist()

    w = np.random.default_rng(0).normal(size=500)
    wq = pdbviz.dorefa_weight(__import__("torch").tensor(w), 2).numpy()
    fig = plot.staircase_figure(w, wq, bits=2)
    assert fig.data[0].type == "histogram" and len(np.unique(fig.data[1].y)) == 4
    assert "4 levels" in fig.layout.title.text
    assert sorted(fig.layout.yaxis2.tickvals) == sorted(np.unique(wq).tolist())  # the ticks are the levels
    with pytest.raises(ValueError, match="of one size"):
        plot.staircase_figure(w, wq[:10])

    err = pdbviz.quantization_error(model, "8-4-2-1")
    fig = plot.quant_error_figure(err)
    assert list(fig.data[0].x) == err.layer.tolist()


def test_html_export_metadata_and_atomicity(tmp_path):
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]), layout={"title": "t"})
    paths = plot.save(fig, tmp_path / "f", formats=("html",), metadata={"dataset": "digits", "seeds": [0, 1]})
    text = paths["html"].read_text()
    assert '<meta name="pdbviz:dataset" content="digits">' in text
    assert f"pdbviz {pdbviz.__version__}" in text and "Plotly.newPlot" in text
    assert "<script src=\"http" not in text and len(text) > 1_000_000  # offline: plotly.js is inlined
    with pytest.raises(ValueError, match="formats must be a non-empty selection"):
        plot.save(fig, tmp_path / "g", formats=("jpg",))


def test_metadata_writers():
    import io

    from PIL import Image
    from pypdf import PdfReader, PdfWriter

    meta = {"generator": "pdbviz 9", "dataset": "digits", "title": "t"}
    svg = plot.export.add_svg_metadata(b'<svg width="1"><g/></svg>', meta)
    assert svg.startswith(b'<svg width="1"><metadata id="pdbviz-metadata"><![CDATA[') and b"digits" in svg
    buf = io.BytesIO()
    Image.new("RGB", (3, 2), (10, 20, 30)).save(buf, format="PNG")
    out = Image.open(io.BytesIO(plot.export.add_png_metadata(buf.getvalue(), meta)))
    assert out.text["Software"] == "pdbviz 9" and json.loads(out.text["Description"])["dataset"] == "digits"
    assert out.size == (3, 2) and out.getpixel((1, 1)) == (10, 20, 30)
    with pytest.raises(ValueError, match="not a PNG image"):
        plot.export.add_png_metadata(b"GIF89a" + b"\x00" * 20, meta)
    buf = io.BytesIO()  # a PDF written by another library, cross-reference stream or not
    writer = PdfWriter()
    writer.add_blank_page(72, 72)
    writer.write(buf)
    info = PdfReader(io.BytesIO(plot.export.add_pdf_metadata(buf.getvalue(), meta))).metadata
    assert info["/Title"] == "t" and info["/Producer"] == "pdbviz 9" and info["/Subject"] == "digits"


@pytest.mark.browser
def test_static_export_with_chromium(tmp_path, require_chromium):
    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]), layout={"title": "bars"})
    paths = plot.save(fig, tmp_path / "bars", metadata={"dataset": "digits", "schedules": {"x": "8-4-2-1"}})
    assert set(paths) == {"html", "svg", "pdf", "png"}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"tEXtDescription" in paths["png"].read_bytes()
    svg = paths["svg"].read_text()
    assert "<svg" in svg and "pdbviz-metadata" in svg and "8-4-2-1" in svg
    pdf = paths["pdf"].read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.rstrip().endswith(b"%%EOF")
    from pypdf import PdfReader

    info = PdfReader(paths["pdf"]).metadata
    assert info["/Title"] == "bars" and info["/Producer"].startswith("pdbviz") and info["/Subject"] == "digits"


def _legend_clear_of_data(fig) -> bool:
    """The legend sits outside the plot area: right of it (with no axis there) or under it."""
    leg = fig.layout.legend
    right_axis = any(getattr(fig.layout, name).side == "right" for name in ("yaxis2", "yaxis3") if
                     getattr(fig.layout, name, None) is not None and getattr(fig.layout, name).overlaying)
    if leg.orientation == "h":
        return leg.y is not None and leg.y < 0 and leg.yanchor == "top"
    return not right_axis and (leg.x is None or leg.x >= 1) and fig.layout.showlegend is not False


def test_equal_series_are_labelled_and_drawn_apart(results):
    t = results.table.copy()
    row = t.set_index("schedule").loc["8-4-2-1"]
    twin = dict(row, schedule="allocated @ memory of 8-4-2-1", shape="allocated")
    t = pd.concat([t[t.error == ""], pd.DataFrame([twin])], ignore_index=True)
    fig = plot.pareto_figure(t)
    points = {tr.name: tr for tr in fig.data if tr.mode == "markers"}
    assert "allocated @ memory of 8-4-2-1 (= 8-4-2-1)" in points and "8-4-2-1" in points
    a, b = points["8-4-2-1"], points["allocated @ memory of 8-4-2-1 (= 8-4-2-1)"]
    assert a.x[0] != b.x[0] and a.y[0] == b.y[0]  # side by side, not on top
    # the x axis covers every point, with a tick at or beyond each end
    lo, hi = (10 ** v for v in fig.layout.xaxis.range)
    xs = [x for tr in points.values() for x in tr.x]
    assert lo < min(xs) and hi > max(xs)
    ticks = fig.layout.xaxis.tickvals
    assert ticks[0] <= min(xs) and ticks[-1] >= max(xs) and lo <= ticks[0] and ticks[-1] <= hi
    assert _legend_clear_of_data(fig)
    # a profile and a training curve equal to another one are labelled and dashed over it
    prof = results.profiles
    same = prof[prof.schedule == "8-4-2-1"].assign(schedule="copy")
    fig = plot.profile_figure(pd.concat([prof, same]), schedule={"conv1": 8, "conv2": 4})
    lines = {tr.name: tr for tr in fig.data if tr.type == "scatter"}
    assert lines["copy (= 8-4-2-1)"].line.dash == "dash" and lines["8-4-2-1"].line.dash is None
    names = [tr.name for tr in fig.data]
    assert names.index("copy (= 8-4-2-1)") > names.index("8-4-2-1")  # drawn over the one it equals
    assert _legend_clear_of_data(fig)  # the bits' axis is on the right: the legend goes under the plot
    hist = results.history
    fig = plot.training_curves(pd.concat([hist, hist[hist.schedule == "8-4-2-1"].assign(schedule="copy")]))
    lines = {tr.name: tr for tr in fig.data if tr.showlegend is not False}
    assert lines["copy (= 8-4-2-1)"].line.dash == "dash"
    assert _legend_clear_of_data(fig)
    w = np.random.default_rng(0).normal(size=500)
    fig = plot.staircase_figure(w, np.sign(w), bits=1)
    assert _legend_clear_of_data(fig)
    for size in ("column", "page"):
        for f in (fig, plot.pareto_figure(t)):
            assert _legend_clear_of_data(plot.for_print(f, size))


@pytest.mark.browser
def test_report_figures_are_print_ready_files(results, tmp_path, require_chromium):
    from PIL import Image
    from pypdf import PdfReader

    from pdbviz.report import standard_figures, write_report

    figures = standard_figures(results)
    info = write_report(results, tmp_path, figures)
    assert info["static_error"] is None
    for stem, fig in figures.items():
        for suffix, inches in (("", 7.0), ("-column", 3.5)):
            paths = info["figures"][stem]
            pdf = PdfReader(paths["pdf" + suffix]).pages[0].mediabox
            assert float(pdf.width) == pytest.approx(inches * 72, abs=1)  # vector, at print width
            png = Image.open(paths["png" + suffix])
            assert png.size[0] == round(inches * 300) and png.info["dpi"][0] == pytest.approx(300, abs=0.01)
            assert png.size[1] == pytest.approx(float(pdf.height) / 72 * 300, abs=2)
            svg = paths["svg" + suffix].read_text()
            assert f'width="{round(inches * 96)}"' in svg
            assert plot.smallest_font_pt(plot.for_print(fig, "page" if not suffix else "column")) >= 7
        assert paths["html"].name == f"{stem}.html"
    page = info["report"].read_text()
    assert "accuracy % (mean ± 95% CI)" in page and "acc_mean" not in page.split("<h2>Configuration")[0]
    assert "<th>weight bits</th>" in page and "<td>32 x5</td>" in page  # readable headers, compact bit lists
    assert page.count('class="plotly-graph-div"') >= len(figures)  # the interactive figures are embedded


def test_tables_a_person_can_read(results, tmp_path):
    from pdbviz.results import ACCURACY_HEADER, TABLE_COLUMNS, compact_bits

    assert list(results.table.columns[:4]) == ["schedule", "acc_mean", "acc_ci95", "kib"]  # what print() shows first
    results.save(tmp_path)
    assert pd.read_csv(tmp_path / "results.csv").columns.tolist() == TABLE_COLUMNS  # the file keeps its columns
    shown = results.display_table()
    assert shown.columns.tolist()[:2] == ["schedule", "weight bits"] and ACCURACY_HEADER in shown.columns
    assert "acc_mean" not in shown.columns and "kib" not in shown.columns and "KiB" in shown.columns
    row = shown.set_index("schedule").loc["8-4-2-1"]
    raw = results.table.set_index("schedule").loc["8-4-2-1"]
    assert row["weight bits"] == compact_bits(raw.w_bits) == "8-4-2-1-1"
    assert row[ACCURACY_HEADER] == f"{raw.acc_mean:.2f} ± {raw.acc_ci95:.2f}" and row["KiB"] == f"{raw.kib:.2f}"
    text = repr(results)
    head = text.splitlines()[1]
    assert head.split()[:3] == ["schedule", "weight", "bits"] and "KiB" in head and "accuracy" in head
    assert "..." not in text and "float-32" in text
    assert compact_bits("32-32-32-32-32-32-32-32") == "32 x8" and compact_bits("8-4-2-1-1-1-1-1") == "8-4-2-1 then 1 x4"
    assert "<th>weight bits</th>" in results._repr_html_()
    tex = results.to_latex()
    caption = next(line for line in tex.splitlines() if line.startswith("\\caption"))
    assert len(caption) <= 110  # the caption wraps instead of running out of its box
