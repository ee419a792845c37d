"""``pdbviz demo``, ``pdbviz compare`` and ``pdbviz sweep``: comparisons of bit schedules, with a report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import add_data_args, non_negative_int, positive_int, print_results, schedule_list, seed


def _cmd_demo(args) -> int:
    from ..demo import run_demo

    info = run_demo(out=args.out, setting="full" if args.full else "quick", seeds=args.seeds, epochs=args.epochs,
                    static=not args.no_static, umap=not args.no_umap, progress=not args.quiet)
    print_results(info["results"], info["seconds"], info)
    return 0


def _entries(args):
    """The data, and the schedule entries parsed for its model: a malformed entry stops before any training."""
    import pdbviz
    from ..experiment import check_schedules

    data = pdbviz.load_dataset(args.dataset, root=args.root, download=args.download, train_subset=args.train_subset)
    template = pdbviz.build_model(args.model, data.input_shape, data.num_classes, width=args.width)
    return data, check_schedules(args.schedules, template)


def _cmd_compare(args) -> int:
    import pdbviz

    t0 = time.perf_counter()
    data, entries = _entries(args)
    results = pdbviz.compare(data, model=args.model, schedules=entries, epochs=args.epochs, seeds=args.seeds,
                             finetune=not args.from_scratch, finetune_epochs=args.finetune_epochs, lr=args.lr,
                             batch_size=args.batch_size, width=args.width, progress=not args.quiet)
    return _report(results, args, t0)


def _report(results, args, t0: float) -> int:
    """Write the report folder of a comparison or a sweep, print the table; 1 when a schedule failed."""
    from ..report import standard_figures, write_report

    figures = standard_figures(results)
    info = write_report(results, args.out, figures, formats=("html",) if args.no_static else
                        ("html", "svg", "pdf", "png"), title=f"pdbviz: {args.model} on {args.dataset}")
    print_results(results, time.perf_counter() - t0, info)
    return 0 if (results.table.error == "").all() else 1


def _cmd_sweep(args) -> int:
    import pdbviz
    from ..sweeps import SchedulerLostError

    t0 = time.perf_counter()
    data, entries = _entries(args)  # before any cluster starts
    by_name = args.root is None and not args.download and args.train_subset is None  # workers load it themselves
    try:
        results = pdbviz.sweep(args.dataset if by_name else data, model=args.model, schedules=entries,
                               epochs=args.epochs, seeds=args.seeds, finetune=not args.from_scratch,
                               finetune_epochs=args.finetune_epochs, lr=args.lr, batch_size=args.batch_size,
                               width=args.width, progress=not args.quiet, out=args.out, client=args.scheduler,
                               workers=args.workers, retries=args.retries)
    except (KeyboardInterrupt, SchedulerLostError) as err:
        why = "interrupted" if isinstance(err, KeyboardInterrupt) else str(err)
        print(f"pdbviz sweep: {why}; finished runs are in {args.out / 'runs'}: run the same command again to "
              "resume", file=sys.stderr)
        return 130 if isinstance(err, KeyboardInterrupt) else 1
    return _report(results, args, t0)


def _demo_setting(s) -> str:
    return (f"{s.model} at width {s.width:g} on {s.dataset}{f' padded to {s.pad_to}x{s.pad_to}' if s.pad_to else ''}, "
            f"seeds {' '.join(map(str, s.seeds))}, {s.epochs} float epochs and {s.finetune_epochs} fine-tune epochs")


def add_parsers(sub) -> None:
    """The ``demo``, ``compare`` and ``sweep`` commands."""
    from ..data import DATASETS
    from ..demo import DEMO_SCHEDULES, SETTINGS
    from ..experiment import DEFAULT_SCHEDULES
    from ..models import MODELS

    quick, full = SETTINGS["quick"], SETTINGS["full"]
    d = sub.add_parser("demo", help="the headline comparison and the paper's claims, with a report",
                       description=f"Train a float {_demo_setting(quick)}; fine-tune from it the schedules "
                                   f"{', '.join(DEMO_SCHEDULES)}; print the table and the paper's claims with "
                                   "their confidence intervals, and write a report folder. --full: "
                                   f"{_demo_setting(full)}.")
    d.add_argument("--out", type=Path, default=Path("pdbviz-demo"), help="output folder (default %(default)s)")
    d.add_argument("--full", action="store_true", help="the longer setting, for paper-grade numbers")
    d.add_argument("--seeds", type=seed, nargs="+", default=None,
                   help=f"seeds (default {' '.join(map(str, quick.seeds))}; --full {' '.join(map(str, full.seeds))})")
    d.add_argument("--epochs", type=positive_int, default=None,
                   help=f"float training epochs (default {quick.epochs}; --full {full.epochs})")
    d.add_argument("--no-static", action="store_true", help="skip SVG/PDF/PNG figures (no Chromium needed)")
    d.add_argument("--no-umap", action="store_true", help="skip the UMAP figure")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_cmd_demo)

    def run_args(sp, out: str):
        add_data_args(sp, DATASETS, MODELS)
        sp.add_argument("--no-static", action="store_true", help="skip SVG/PDF/PNG figures")
        sp.add_argument("--schedules", type=schedule_list, default=list(DEFAULT_SCHEDULES),
                        help='schedules separated by ";", e.g. "float;2;halving;4/4;increasing;alloc:1.5" '
                             f'(default "{";".join(DEFAULT_SCHEDULES)}")')
        sp.add_argument("--epochs", type=positive_int, default=20, help="float training epochs (default %(default)s)")
        sp.add_argument("--finetune-epochs", type=positive_int, default=3,
                        help="fine-tune epochs (default %(default)s)")
        sp.add_argument("--from-scratch", action="store_true", help="train each schedule from scratch for --epochs")
        sp.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default %(default)s)")
        sp.add_argument("--seeds", type=seed, nargs="+", default=[0], help="one run per seed (default 0)")
        sp.add_argument("--out", type=Path, default=Path(out), help="output folder (default %(default)s)")

    c = sub.add_parser("compare", help="compare bit schedules on a dataset and write a report",
                       description="Compare bit schedules: float once per seed, each schedule fine-tuned from it.")
    run_args(c, "pdbviz-compare")
    c.set_defaults(func=_cmd_compare)

    sw = sub.add_parser("sweep", help="compare's runs as tasks on a dask cluster (local or remote), resumable",
                        description="Run every float model and every (schedule, seed) run as an independent task "
                                    "on dask.distributed: a local cluster (--workers) or a running scheduler "
                                    "(--scheduler). Each finished run is written to OUT/runs at once; running "
                                    "the same command again skips finished runs. Writes the same report as "
                                    "compare. Needs: pip install \"pdbviz[dask]\".")
    run_args(sw, "pdbviz-sweep")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, default=None,
                       help="processes of the local cluster (default: one per core)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="address of a running dask scheduler, e.g. tcp://10.0.0.5:8786")
    sw.add_argument("--retries", type=non_negative_int, default=2,
                    help="retries of a run whose worker dies, on the local cluster (default %(default)s)")
    sw.set_defaults(func=_cmd_sweep)
