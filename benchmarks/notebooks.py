"""How long each teaching notebook takes to run from top to bottom, solutions included.

Run: python benchmarks/notebooks.py [--only 01 04] [--timeout 1200]

Each packaged notebook is copied into a temporary folder and executed there
with ``nbclient`` (as its test runs it, one after the other), with its files
written under that folder. Printed per notebook, as a Markdown table: the wall
time of the execution (kernel start included) and the CPU time the kernel
process used (``time.process_time()`` read in the kernel after the last cell),
then the totals. The wall time is what a class waits for; the CPU time is
closer to what one quiet core needs when the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from pdbviz._notebooks import OUTPUT_ENV, packaged_notebooks

CPU_MARK = "__kernel_cpu_seconds__"


def run(path: Path, work: Path, timeout: int) -> tuple[float, float]:
    """Execute a copy of ``path`` in ``work``; returns (wall seconds, kernel CPU seconds)."""
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(f"import time\nprint('{CPU_MARK}', time.process_time())"))
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(work)}})
    t0 = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - t0
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    cpu = float(text.split(CPU_MARK, 1)[1].split()[0])
    return wall, cpu


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=None, metavar="PREFIX",
                    help="run only the notebooks whose names start with these (01, 04...)")
    ap.add_argument("--timeout", type=int, default=1200, help="per-cell hang guard in seconds")
    args = ap.parse_args(argv)
    notebooks = sorted(packaged_notebooks().glob("*.ipynb"))
    if args.only:
        notebooks = [p for p in notebooks if p.name.startswith(tuple(args.only))]
        if not notebooks:
            raise SystemExit(f"--only {args.only} matches none of the notebooks")
    print("| notebook | wall s | kernel CPU s |")
    print("|---|---|---|")
    total_wall = total_cpu = 0.0
    with tempfile.TemporaryDirectory(prefix="pdbviz-notebooks-") as tmp:
        os.environ[OUTPUT_ENV] = str(Path(tmp) / "output")
        for path in notebooks:
            work = Path(tmp) / path.stem
            work.mkdir()
            shutil.copyfile(path, work / path.name)
            wall, cpu = run(work / path.name, work, args.timeout)
            total_wall, total_cpu = total_wall + wall, total_cpu + cpu
            print(f"| {path.stem} | {wall:.0f} | {cpu:.0f} |", flush=True)
    print(f"| all {len(notebooks)}, one after the other | {total_wall:.0f} | {total_cpu:.0f} |")


if __name__ == "__main__":
    main()
