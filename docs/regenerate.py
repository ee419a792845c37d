"""Regenerate every number and figure that the README and the docs show from a run of ``pdbviz demo``.

    python docs/regenerate.py            # run the demo, commit-ready: docs/results/demo/, docs/images/, the text
    python docs/regenerate.py --no-run   # rewrite the text from the committed docs/results/demo/ only
    python docs/regenerate.py --check    # exit 1 when the README or the docs disagree with docs/results/demo/

A run writes ``docs/results/demo/``: the demo's ``results.csv``, ``results.json``,
``runs.csv`` and ``table.tex``, the claims evaluated on them (``claims.csv``) and
``metadata.json`` (pdbviz, torch and Python versions, the CPU and its cores, the
whole process's wall time, the command, the date); it copies the demo's
page-width figures (7 in, 300 dpi) into ``docs/images/``. Then every generated
section of the README and the docs, the text between
``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->``, is written
again from those files; nothing in a generated section is typed by hand.
A section named ``bench-NAME`` shows ``docs/results/benchmarks/NAME.md``, the
committed output of a benchmark (``python benchmarks/NAME.py ... --markdown
docs/results/benchmarks/NAME.md``: its command, the machine and its table).
``tests/test_docs.py`` fails when a section differs from what this script
renders, and checks the README's table cell by cell against ``results.csv``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results" / "demo"
IMAGES = ROOT / "docs" / "images"
#: the files of a demo run kept in the repository (small, text)
KEPT = ("results.csv", "results.json", "runs.csv", "table.tex")
#: the demo's figures shown by the README and the docs (page width, 300 dpi)
FIGURES = ("accuracy_vs_memory", "separability_profile")


def _documents() -> tuple[str, ...]:
    """The README and every page of the docs (not the committed run outputs) that has a generated section."""
    pages = sorted(p for p in (ROOT / "docs").rglob("*.md")
                   if not {"results", "_build"} & set(p.relative_to(ROOT / "docs").parts)
                   and "<!-- generated: " in p.read_text(encoding="utf-8"))
    return ("README.md", *(str(p.relative_to(ROOT)) for p in pages))


#: the files with generated sections
DOCUMENTS = _documents()
#: what the "±" of the tables is
PM_MEANING = "mean over seeds ± the half-width of its 95% confidence interval over seeds and test images"

_SECTION = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)",
                      re.S)


# -- reading a committed run ------------------------------------------------------------------------------------
def load(results_dir: Path = RESULTS) -> dict:
    """The committed run: ``{"table": DataFrame, "claims": DataFrame, "config": dict, "meta": dict}``."""
    import pandas as pd

    doc = json.loads((results_dir / "results.json").read_text(encoding="utf-8"))
    table = pd.read_csv(results_dir / "results.csv", keep_default_na=False, na_values=[""])
    claims = pd.read_csv(results_dir / "claims.csv", keep_default_na=False, na_values=[""])
    meta = json.loads((results_dir / "metadata.json").read_text(encoding="utf-8"))
    return {"table": table, "claims": claims, "config": doc["config"], "meta": meta}


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


# -- rendering ----------------------------------------------------------------------------------------------------
def _f(value, fmt: str = "{:.2f}") -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "–"
    return fmt.format(value) if math.isfinite(value) else "–"


def machine(meta: dict) -> str:
    """"torch 2.x on <CPU> (2 cores)": what the numbers were measured with."""
    return (f"pdbviz {meta['pdbviz']}, torch {meta['torch']}, Python {meta['python']} on {meta['cpu']} "
            f"({meta['cores']} cores)")


def render_summary(run: dict) -> str:
    """One sentence: how long the demo took, on what."""
    meta, cfg = run["meta"], run["config"]
    load = meta.get("load_average")
    shared = (f" (load average {load:.1f} when it started: the CPU was shared with other work, so a quiet "
              "machine is faster)") if load is not None and load > 0.5 * meta["cores"] else ""
    return (f"The run committed in `docs/results/demo/` took {_f(meta['seconds'], '{:.0f}')} s, whole process "
            f"(`{meta['command']}`), with {machine(meta)}{shared}; {len(cfg.get('seeds', []))} seeds, "
            f"{cfg.get('n_test')} test images.\n")


def render_table(run: dict) -> str:
    """The demo's table: schedule, bits, average bits, KiB and accuracy (mean ± 95% CI) of every schedule."""
    from pdbviz.results import compact_bits

    cfg, meta = run["config"], run["meta"]
    lines = [f"**The demo** (`pdbviz demo`: {cfg.get('model')} at width {cfg.get('width'):g} on {cfg.get('dataset')}, "
             f"{cfg.get('n_test')} test images, seeds {', '.join(map(str, cfg.get('seeds', [])))}; "
             f"{_f(meta['seconds'], '{:.0f}')} s with {machine(meta)}). Accuracy: {PM_MEANING}; "
             "from `docs/results/demo/results.csv`:", "",
             "| schedule | bits per layer | avg bits | KiB | accuracy % (mean ± 95% CI) |", "|---|---|---|---|---|"]
    for r in run["table"].itertuples():
        acc = "failed" if _f(r.acc_mean) == "–" else f"{_f(r.acc_mean)} ± {_f(r.acc_ci95)}"
        lines.append(f"| {r.schedule} | {compact_bits(r.w_bits)} | {_f(r.avg_bits)} | {_f(r.kib)} | {acc} |")
    return "\n".join(lines) + "\n"


def render_claims(run: dict) -> str:
    """The paper's claims on the committed run: verdict, effect and 95% CI of each."""
    claims = run["claims"]
    verdicts = ", ".join(f"{n} *{v}*" for v, n in claims.verdict.value_counts(sort=False).items())
    lines = [f"The paper's claims on these runs ({verdicts}; effect: difference of mean test accuracy in points, "
             "95% CI over seeds and test images, from `docs/results/demo/claims.csv`):", ""]
    for r in claims.itertuples():
        detail = str(r.conclusion).removeprefix(f"{r.verdict}: ")
        lines.append(f"- ({r.claim}) {r.statement}: *{r.verdict}* ({detail})")
    if "float_run" in claims and isinstance(claims.float_run.iloc[0], str):
        lines += ["", f"Float reference of the claims: {claims.float_run.iloc[0]}."]
    n_test = run["config"].get("n_test")
    if n_test:
        lines += ["", f"With {n_test} test images one image is worth {100 / n_test:.2f} points: `pdbviz demo --full` "
                      "(MNIST, 1,250 test images, 5 seeds) narrows the intervals."]
    return "\n".join(lines) + "\n"


RENDERERS = {"demo-summary": render_summary, "demo-table": render_table, "demo-claims": render_claims}
#: a section named ``bench-NAME`` shows ``docs/results/benchmarks/NAME.md``, a benchmark's committed output
BENCHMARKS = ROOT / "docs" / "results" / "benchmarks"


def render_benchmark(name: str) -> str:
    """The committed output of a benchmark (its command, the machine and its table), as written by it."""
    path = BENCHMARKS / f"{name}.md"
    if not path.is_file():
        raise ValueError(f"generated section 'bench-{name}' has no committed output {path.relative_to(ROOT)}")
    return path.read_text(encoding="utf-8")


def render(name: str, run: dict) -> str:
    """The body of the generated section ``name``: a demo renderer's, or a benchmark's committed output."""
    if name.startswith("bench-"):
        return render_benchmark(name.removeprefix("bench-"))
    if name not in RENDERERS:
        raise ValueError(f"unknown generated section {name!r}; known: {', '.join(RENDERERS)} and bench-NAME")
    return RENDERERS[name](run)


def sections(text: str) -> dict[str, str]:
    """``{name: body}`` of the generated sections of a document."""
    return {m["name"]: m["body"] for m in _SECTION.finditer(text)}


def rewrite(text: str, run: dict) -> str:
    """``text`` with every generated section rendered again from ``run``; an unknown name is an error."""
    def one(m):
        return m.group(1) + render(m["name"], run) + m.group(4)

    return _SECTION.sub(one, text)


def stale(run: dict | None = None) -> list[str]:
    """The documents whose generated sections differ from what ``run`` (the committed one) renders."""
    run = run or load()
    return [doc for doc in DOCUMENTS
            if rewrite((ROOT / doc).read_text(encoding="utf-8"), run) != (ROOT / doc).read_text(encoding="utf-8")]


# -- running the demo ---------------------------------------------------------------------------------------------
def run_demo(results_dir: Path = RESULTS) -> None:
    """Run ``pdbviz demo`` (this checkout's code) in a fresh process, keep its output and write the metadata."""
    import torch

    import pdbviz
    from pdbviz import Results

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="pdbviz-regenerate-") as tmp:
        out = Path(tmp) / "demo"
        command = [sys.executable, "-m", "pdbviz.cli", "demo", "--out", str(out), "--quiet"]
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        t0 = time.perf_counter()
        subprocess.run(command, check=True, env=env, cwd=tmp)
        seconds = time.perf_counter() - t0
        missing = [f"figures/{stem}.png" for stem in FIGURES if not (out / "figures" / f"{stem}.png").is_file()]
        if missing:
            raise RuntimeError(f"the demo wrote no {', '.join(missing)}: static figures need Chromium")
        results_dir.mkdir(parents=True, exist_ok=True)
        for name in KEPT:
            shutil.copyfile(out / name, results_dir / name)
        Results.load(out).claims().to_csv(results_dir / "claims.csv", index=False)
        IMAGES.mkdir(parents=True, exist_ok=True)
        for stem in FIGURES:
            shutil.copyfile(out / "figures" / f"{stem}.png", IMAGES / f"{stem}.png")
    meta = {"pdbviz": pdbviz.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "cpu": cpu_name(), "cores": os.cpu_count(), "seconds": round(seconds, 1),
            "load_average": None if load is None else round(load, 2),
            "command": "pdbviz demo", "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "figures": {stem: f"docs/images/{stem}.png" for stem in FIGURES}}
    (results_dir / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-run", action="store_true", help="rewrite the text from the committed run only")
    parser.add_argument("--check", action="store_true", help="exit 1 when a document disagrees with the run")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.check:
        bad = stale()
        for doc in bad:
            print(f"{doc}: generated sections differ from docs/results/demo/ (run python docs/regenerate.py)")
        return 1 if bad else 0
    if not args.no_run:
        run_demo()
    run = load()
    for doc in DOCUMENTS:
        path = ROOT / doc
        path.write_text(rewrite(path.read_text(encoding="utf-8"), run), encoding="utf-8")
    print(f"rewrote {', '.join(DOCUMENTS)} from docs/results/demo/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
