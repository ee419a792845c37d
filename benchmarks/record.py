"""Run a benchmark and keep its output for the README and the docs, with the machine it ran on.

    python benchmarks/record.py NAME [--markdown] -- python benchmarks/X.py ARGS...

writes ``docs/results/benchmarks/NAME.md``: the command, the pdbviz, torch and
Python versions, the CPU, the load average when it started, the date, then what
the benchmark printed (as it printed it with ``--markdown``, for a benchmark
that prints a Markdown table; otherwise in a code block). The README's and the
docs' section ``<!-- generated: bench-NAME -->`` shows that file
(``python docs/regenerate.py --no-run``), and ``tests/test_docs.py`` fails when
they differ, so no benchmark figure is typed by hand.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
from regenerate import BENCHMARKS, cpu_name  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", help="the output's name: docs/results/benchmarks/NAME.md")
    parser.add_argument("--markdown", action="store_true", help="the benchmark prints Markdown: keep it as it is")
    parser.add_argument("--summary", metavar="REGEX", default=None,
                        help="also write NAME-summary.md with only the printed lines that match REGEX")
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        parser.error("give the benchmark's command after --")
    cut = argv.index("--")
    args, command = parser.parse_args(argv[:cut]), argv[cut + 1:]
    import torch

    import pdbviz

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if run.returncode:
        sys.stderr.write(run.stdout + run.stderr)
        return run.returncode
    shown = [part for part in command if part != sys.executable]
    head = (f"`{shlex.join(['python', *shown[0:]] if shown[0].endswith('.py') else shown)}` "
            f"(pdbviz {pdbviz.__version__}, torch {torch.__version__}, Python {platform.python_version()} on "
            f"{cpu_name()}, {os.cpu_count()} cores, load average {load:.1f} at the start, "
            f"{datetime.now(timezone.utc):%Y-%m-%d}):\n\n")
    BENCHMARKS.mkdir(parents=True, exist_ok=True)
    outputs = {args.name: run.stdout.strip()}
    if args.summary:
        outputs[f"{args.name}-summary"] = "\n".join(line for line in run.stdout.strip().splitlines()
                                                    if re.search(args.summary, line))
    for name, text in outputs.items():
        body = text + "\n" if args.markdown else f"```text\n{text}\n```\n"
        (BENCHMARKS / f"{name}.md").write_text(head + body, encoding="utf-8")
        print(f"wrote {(BENCHMARKS / f'{name}.md').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
