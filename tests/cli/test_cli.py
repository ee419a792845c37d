import json
import subprocess
import sys

import pandas as pd
import pytest

from pdbviz.cli import main
from pdbviz.demo import SETTINGS


def run(*args):
    return subprocess.run([sys.executable, "-m", "pdbviz.cli", *args], capture_output=True, text=True, timeout=600)


def run_main(args, capsys) -> tuple[int, str, str]:
    """``main(args)`` in this process (argparse's exits included): exit status, stdout, stderr."""
    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("args, needle", [
    (["demo", "--epochs", "0"], "--epochs: expected a positive integer, got '0'"),
    (["demo", "--seeds", "a"], "seeds must be integers, got 'a'"),
    (["compare", "--dataset", "cifar"], "invalid choice: 'cifar'"),
    (["compare", "--model", "resnet"], "invalid choice: 'resnet'"),
    (["memory", "--schedule", "8-x"], "token 'x'"),
    (["memory", "--model", "nosuchnet"], "unknown --model 'nosuchnet'"),
    (["nosuchcommand"], "invalid choice: 'nosuchcommand'"),
    (["compare", "--schedules", "float;9", "--epochs", "1"], "1..8 or 32"),
    (["compare", "--schedules", "alloc:lots", "--epochs", "1"], "the budget of 'alloc:lots' must be average bits"),
    (["compare", "--schedules", "alloc:0", "--epochs", "1"], "budget must be a positive number"),
    (["sweep", "--workers", "0"], "--workers: expected a positive integer, got '0'"),
    (["sweep", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"], "not allowed with argument --workers"),
    (["sweep", "--schedules", "float;9", "--epochs", "1"], "1..8 or 32"),
    (["compare", "--schedules", "float;alloc:nope:2", "--epochs", "1"],
     "unknown metric 'nope' in schedule entry 'alloc:nope:2'; available: fisher, probe"),
    (["compare", "--schedules", "alloc:hawq:lots", "--epochs", "1"], "the budget of 'alloc:hawq:lots' must be"),
    (["sweep", "--schedules", "alloc:kl:2", "--epochs", "1"], "sweep does not run 'alloc:METRIC:B' entries (here kl)"),
    (["allocate", "--budget", "3x"], "argument --budget: budget must be a positive number"),
    (["allocate", "--budget", "0"], "argument --budget: budget must be a positive number"),
    (["allocate", "--budget", "2", "--metric", "foo"], "--metric: invalid choice: 'foo' (choose from 'fisher'"),
    (["allocate"], "the following arguments are required: --budget"),
])
def test_bad_arguments_exit_2_with_one_line(args, needle, capsys):
    code, _, err = run_main(args, capsys)  # an exception escaping main would fail the test
    assert code == 2
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and needle in lines[0]


def test_a_bad_argument_in_a_process_prints_one_line_and_no_traceback():
    r = run("compare", "--schedules", "alloc:lots", "--epochs", "1")
    assert r.returncode == 2
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and "the budget of 'alloc:lots' must be average bits" in lines[0]


def test_help_and_version(capsys):
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0 and all(c in out for c in ("demo", "compare", "sweep", "analyze", "lab", "memory", "allocate"))
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0 and out.startswith("pdbviz ")
    assert run_main([], capsys)[0] == 2


def test_demo_writes_report_table_and_figures(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "2", "--seeds", "0", "1", "--no-static", "--no-umap",
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "8-4-2-1" in printed and "increasing 1→8" in printed and "wall time" in printed
    assert "The paper's claims on these runs" in printed and "2 seeds" in printed
    for name in ("report.html", "results.csv", "results.json", "table.tex", "runs.csv", "history.csv"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "results.csv")
    control = f"float-32 (+{SETTINGS['quick'].finetune_epochs} epochs)"  # the float control trains as long
    assert table.schedule.tolist() == ["float-32", control, "uniform 1-bit", "uniform 2-bit", "uniform 4-bit",
                                       "ternary", "LSQ 2-bit", "8-4-2-1", "increasing 1→8",
                                       "allocated @ memory of 8-4-2-1"]
    assert set(pd.read_csv(out / "runs.csv").seed) == {0, 1}
    report = (out / "report.html").read_text()
    assert "Accuracy vs memory" in report and "Plotly.newPlot" in report and "\\begin{table}" in report
    assert "<script src=\"http" not in report
    figs = sorted(p.stem for p in (out / "figures").glob("*.html"))
    assert "accuracy_vs_memory" in figs and "separability_profile" in figs and "quantizer_staircase" in figs
    assert json.loads((out / "results.json").read_text())["config"]["dataset"] == "digits"


def test_memory_command_reports_packed_size(tmp_path, capsys):
    assert main(["memory", "--model", "lenet", "--input-shape", "1", "8", "8", "--packed",
                 str(tmp_path / "m.pdbq")]) == 0
    out = capsys.readouterr().out
    assert "average bits" in out and "packed file" in out and (tmp_path / "m.pdbq").is_file()


def test_lab_binds_localhost_with_a_token(capsys):
    assert main(["lab", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "--ServerApp.ip=127.0.0.1" in out and "--ServerApp.token=" in out
    token = out.split("--ServerApp.token=")[1].split()[0]
    assert len(token) >= 32


@pytest.mark.slow
def test_analyze_writes_profile_and_umap(tmp_path, capsys):
    out = tmp_path / "an"
    assert main(["analyze", "--epochs", "2", "--n-samples", "150", "--no-static", "--quiet", "--out", str(out)]) == 0
    prof = pd.read_csv(out / "profile.csv")
    assert prof.layer.tolist()[-1] == "logits" and {"fisher", "probe", "knn", "silhouette"} <= set(prof.columns)
    assert (out / "umap_layers.html").is_file() and (out / "profile_fisher.html").is_file()


def test_download_without_a_network_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    import urllib.error

    import torchvision.datasets as tvd

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tvd, "MNIST", offline)
    assert main(["compare", "--dataset", "mnist", "--download", "--root", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not download dataset 'mnist'" in err[0] and "name resolution" in err[0]


def _allocate_lines(out: str) -> dict[str, list[str]]:
    lines = out.strip().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("budget "))
    return {line[:line.index("  ")]: line[line.index("  "):].split() for line in lines[start + 1:]}


def test_allocate_prints_one_schedule_per_budget(capsys):
    import pdbviz

    rc = main(["allocate", "--epochs", "1", "--train-subset", "400", "--metric", "kl", "--n-samples", "100",
               "--quiet", "--budget", "2", "--budget", "8 KiB", "--budget", "2e7 BOPs", "--budget", "0.5 bits"])
    assert rc == 1  # one budget is impossible; the others are printed
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("kl on LeNet (digits, float accuracy")
    rows = _allocate_lines(out)
    assert list(rows) == ["2 bits", "8 KiB", "2e7 BOPs", "0.5 bits"]
    model = pdbviz.build_model("lenet", (1, 8, 8), 10)
    for budget, (text, avg, kib, bops, loss) in [(b, r) for b, r in rows.items() if b != "0.5 bits"]:
        s = pdbviz.memory_summary(model, pdbviz.BitSchedule.from_string(text, model))
        assert float(avg) == pytest.approx(s.avg_bits, abs=1e-3) and float(kib) == pytest.approx(
            s.quantized_weight_kib, abs=0.01) and float(bops) == pytest.approx(s.bops, rel=1e-3)
        assert float(loss) >= 0
    assert float(rows["2 bits"][1]) <= 2 and float(rows["8 KiB"][2]) <= 8 and float(rows["2e7 BOPs"][3]) <= 2e7
    assert rows["0.5 bits"][:2] == ["impossible:", "the"] and "1 average bits" in " ".join(rows["0.5 bits"])


def test_allocate_from_a_checkpoint_matches_allocate_bits(trained, tmp_path, capsys):
    import pdbviz

    model, data = trained
    path = pdbviz.save_model(model, tmp_path / "lenet.pt")
    assert main(["allocate", "--checkpoint", str(path), "--metric", "fisher", "--monotone", "--budget", "1.5",
                 "--quiet"]) == 0
    rows = _allocate_lines(capsys.readouterr().out)
    profile = pdbviz.separability_profile(model, data, metrics=("fisher",), n_samples=1000, seed=0)
    assert rows["1.5 bits"][0] == pdbviz.allocate_bits(profile, model, 1.5).to_string(model)
    assert main(["allocate", "--checkpoint", str(path), "--dataset", "mnist5k", "--budget", "2"]) == 2
    assert "holds a model for inputs (1, 8, 8)" in capsys.readouterr().err


def _parsers():
    """The ``pdbviz`` parser and every subcommand's parser."""
    import argparse

    from pdbviz.cli import build_parser

    root = build_parser()
    sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return {"pdbviz": root, **{f"pdbviz {name}": p for name, p in sub.choices.items()}}, sub


def test_every_option_and_command_has_help():
    parsers, sub = _parsers()
    assert {"pdbviz memory", "pdbviz export", "pdbviz demo", "pdbviz compare", "pdbviz sweep", "pdbviz allocate",
            "pdbviz analyze", "pdbviz lab"} <= set(parsers)
    missing = [(name, a.dest) for name, p in parsers.items() for a in p._actions if not (a.help or "").strip()]
    assert missing == []
    assert all((c.help or "").strip() for c in sub._choices_actions)


@pytest.mark.parametrize("columns", [40, 60, 100])
def test_help_never_cuts_a_default_or_a_word(columns, monkeypatch):
    import re

    monkeypatch.setenv("COLUMNS", str(columns))
    parsers, _ = _parsers()
    checked = 0
    for name, p in parsers.items():
        text = p.format_help()
        words = set(text.split())
        formatter = p._get_formatter()
        for action in p._actions:
            if not action.help:
                continue
            expanded = formatter._expand_help(action)
            for default in re.findall(r"\(default:? ([^ ()]+)\)", expanded):
                assert default + ")" in words, (name, action.dest, default)  # whole, on one line
                checked += 1
            for word in expanded.split():  # every word of the help is printed whole
                assert word in words, (name, action.dest, word)
    assert checked >= 20


def test_help_makes_no_timing_claim_and_lists_the_registries():
    from pdbviz.analysis import METRIC_INFO
    from pdbviz.demo import SETTINGS
    from pdbviz.quant.quantizers import WEIGHT_QUANTIZERS

    parsers, _ = _parsers()
    for name, p in parsers.items():
        text = p.format_help().lower()
        assert "minute" not in text and "laptop" not in text and " seconds" not in text, name
    metric = next(a for a in parsers["pdbviz allocate"]._actions if a.dest == "metric")
    assert list(metric.choices) == list(METRIC_INFO)
    schedule = next(a for a in parsers["pdbviz memory"]._actions if a.dest == "schedule")
    assert all(q in schedule.help for q in WEIGHT_QUANTIZERS)
    demo = " ".join(parsers["pdbviz demo"].format_help().split())
    assert f"{SETTINGS['quick'].epochs} float epochs" in demo and f"default {SETTINGS['quick'].epochs};" in demo


def test_python_dash_m_and_the_console_entry_point_run_the_same_main():
    import importlib.metadata

    import pdbviz.cli

    r = run("memory", "--help")
    assert r.returncode == 0 and "--input-shape" in r.stdout
    scripts = {e.name: e.value for e in importlib.metadata.entry_points(group="console_scripts")}
    assert scripts.get("pdbviz", "pdbviz.cli:main") == "pdbviz.cli:main" and callable(pdbviz.cli.main)


def test_the_claims_print_with_statements_memories_verdicts_and_power(tmp_path, capsys):
    import pdbviz
    from pdbviz.cli.common import print_results

    import torch

    data = pdbviz.load_dataset("digits", train_subset=300)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = pdbviz.compare(data, schedules=["float", "float:long", "1", "halving", "increasing"], seeds=(0, 1),
                                 epochs=1, finetune_epochs=1, n_samples=100, profile_metrics=("fisher",),
                                 progress=False)
    finally:
        torch.set_num_threads(threads)
    print_results(results, 1.0, {"report": str(tmp_path / "report.html"), "figures": []})
    printed = capsys.readouterr().out
    assert "The paper's claims on these runs (95% CI for new seeds and new test images;" in printed
    assert "minimum detectable effect at 80% power" in printed
    assert "float reference: float-32 (+1 epoch) (" in printed and "trained as long as the quantized runs" in printed
    claims = results.claims()
    for c in claims.itertuples():
        assert f"({c.claim}) {c.statement}" in printed and c.conclusion in printed
        if c.verdict not in ("not measured", "not testable"):
            assert f"{c.schedule} ({c.schedule_kib:.2f} KiB) vs {c.baseline} ({c.baseline_kib:.2f} KiB)" in printed
        if c.verdict == "within noise":
            assert f"the experiment detects {c.mde:.2f} points" in printed
    assert set(claims.verdict[claims.claim.isin(["ii", "iii"])]) <= {"holds", "within noise", "does not hold"}
