"""The ``pdbviz`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pdbviz._notebooks import NOTEBOOKS_FOLDER

#: exit status of a command given bad arguments (argparse's convention).
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one clear line and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _schedule_list(text: str) -> list[str]:
    items = [s.strip() for s in text.split(";") if s.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one schedule, separated by ';'")
    return items


def _cmd_memory(args) -> int:
    import torchvision

    import pdbviz
    from pdbviz.models import MODELS

    if args.model in MODELS:
        model = pdbviz.build_model(args.model, tuple(args.input_shape), args.num_classes)
    elif args.model in torchvision.models.list_models(module=torchvision.models):
        model = torchvision.models.get_model(args.model, num_classes=args.num_classes)
    else:
        raise ValueError(f"unknown --model {args.model!r}; use one of {', '.join(MODELS)} or a torchvision "
                         "classification model such as resnet18")
    q = pdbviz.quantize(model, args.schedule)
    report = pdbviz.memory_report(q)
    s = report.summary
    report.print()
    if args.packed:
        path = pdbviz.save_packed(q, args.packed)
        size = path.stat().st_size / 1024
        print(f"packed file {path}: {size:,.1f} KiB ({100 * (size / s.total_kib - 1):+.2f}% of the table's total)")
    return 0


def _cmd_export(args) -> int:
    import warnings

    import pdbviz
    from pdbviz.export import FORMATS, export_model
    from pdbviz.quant.packing import read_packed_header

    header, _ = read_packed_header(args.packed)
    if args.model is not None:
        config = {"name": args.model, "input_shape": args.input_shape, "num_classes": args.num_classes,
                  "width": args.width}
        if args.input_shape is None or args.num_classes is None:
            raise ValueError("--model needs --input-shape C H W and --num-classes N too")
    else:
        config = header.get("config")
        if not config:
            raise ValueError(f"{args.packed} does not say how to build its {header.get('model')} (written by an "
                             "older pdbviz or not a zoo model); pass --model NAME --input-shape C H W --num-classes N")
    model = pdbviz.build_model(config["name"], tuple(config["input_shape"]), config["num_classes"],
                               width=config.get("width", 1.0))
    q = pdbviz.load_packed(args.packed, model)
    out = args.output or args.packed.with_name(args.packed.name.removesuffix(".pdbq") + FORMATS[args.to])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export_model(q, out, to=args.to)
    packed_kib, table = args.packed.stat().st_size / 1024, pdbviz.memory_summary(q)
    if args.to == "torchao":
        print(f"wrote {out}: torchao FqnToConfig for {len(result.layers)} Linear layers: "
              + ", ".join(f"{k} {v}" for k, v in result.layers.items()))
        for name, note in result.notes.items():
            print(f"  note: {name}: {note}")
        return 0
    size = result.nbytes / 1024
    print(f"wrote {out} ({args.to}): {size:,.1f} KiB; packed file {packed_kib:,.1f} KiB; memory table "
          f"{table.total_kib:,.1f} KiB ({table.quantized_weight_kib:,.1f} KiB of quantized weights)")
    for layer in result.layers:
        print(f"  {layer.name}: weight {layer.weight}; input {layer.input}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers, got {text!r}") from None


def _print_results(results, seconds: float, info: dict) -> None:
    from pdbviz.claims import claims_text

    print()
    print(results.pretty())
    print("\nThe paper's claims on these runs (95% CI: seed spread and the test set's size):")
    print(claims_text(results.claims()))
    out = Path(info["report"]).parent
    print(f"\nwrote {info['report']} (opens offline), {out / 'results.csv'}, {out / 'results.json'}, "
          f"{out / 'table.tex'} and {len(info['figures'])} figures in {out / 'figures'}")
    if info.get("static_error"):
        print(f"note: only HTML figures were written: {info['static_error']}")
    print(f"wall time {seconds:.1f} s")


def _cmd_demo(args) -> int:
    from pdbviz.demo import run_demo

    info = run_demo(out=args.out, setting="full" if args.full else "quick", seeds=args.seeds, epochs=args.epochs,
                    static=not args.no_static, umap=not args.no_umap, progress=not args.quiet)
    _print_results(info["results"], info["seconds"], info)
    return 0


def _cmd_compare(args) -> int:
    import time

    import pdbviz
    from pdbviz.experiment import check_schedules

    t0 = time.perf_counter()
    data = pdbviz.load_dataset(args.dataset, root=args.root, download=args.download, train_subset=args.train_subset)
    template = pdbviz.build_model(args.model, data.input_shape, data.num_classes, width=args.width)
    check_schedules(args.schedules, template)  # reject malformed schedules before any training
    results = pdbviz.compare(data, model=args.model, schedules=args.schedules, epochs=args.epochs, seeds=args.seeds,
                             finetune=not args.from_scratch, finetune_epochs=args.finetune_epochs, lr=args.lr,
                             batch_size=args.batch_size, width=args.width, progress=not args.quiet)
    return _report(results, args, t0)


def _report(results, args, t0: float) -> int:
    """Write the report folder of a comparison or a sweep, print the table; 1 when a schedule failed."""
    import time

    from pdbviz.report import standard_figures, write_report

    figures = standard_figures(results)
    info = write_report(results, args.out, figures, formats=("html",) if args.no_static else
                        ("html", "svg", "pdf", "png"), title=f"pdbviz: {args.model} on {args.dataset}")
    _print_results(results, time.perf_counter() - t0, info)
    return 0 if (results.table.error == "").all() else 1


def _cmd_sweep(args) -> int:
    import time

    import pdbviz
    from pdbviz.experiment import check_schedules
    from pdbviz.sweep import SchedulerLostError

    t0 = time.perf_counter()
    data = pdbviz.load_dataset(args.dataset, root=args.root, download=args.download, train_subset=args.train_subset)
    template = pdbviz.build_model(args.model, data.input_shape, data.num_classes, width=args.width)
    check_schedules(args.schedules, template)  # reject malformed schedules before any cluster starts
    by_name = args.root is None and not args.download and args.train_subset is None  # workers load it themselves
    try:
        results = pdbviz.sweep(args.dataset if by_name else data, model=args.model, schedules=args.schedules,
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


def _budget(text: str) -> float | str:
    """A budget of ``pdbviz allocate``: a plain number is average bits, else the string ``parse_budgets`` reads."""
    from pdbviz.analysis import parse_budgets

    try:
        value = float(text)
    except ValueError:
        value = text
    try:
        parse_budgets(value)
    except ValueError as err:
        message = str(err) if isinstance(value, str) else (
            f"budget must be a positive number of average bits or a string like '40 KiB' or '2e6 BOPs', got {text!r}")
        raise argparse.ArgumentTypeError(message) from None
    return value


def _allocation_model(args, data):
    """The float model of ``pdbviz allocate``: loaded from --checkpoint, or built and trained here."""
    import pdbviz
    from pdbviz.quant import model_info

    if args.checkpoint is None:
        model = pdbviz.build_model(args.model, data.input_shape, data.num_classes, width=args.width, seed=args.seed)
        pdbviz.fit(model, data, epochs=args.epochs, lr=args.lr, seed=args.seed, progress=not args.quiet)
        return model
    model = pdbviz.load_model(args.checkpoint)
    config = model_info(model).config or {}
    shape, classes = tuple(config.get("input_shape", ())), config.get("num_classes")
    if shape != tuple(data.input_shape) or classes != data.num_classes:
        raise ValueError(f"--checkpoint {args.checkpoint} holds a model for inputs {shape} and {classes} classes; "
                         f"--dataset {data.name} has inputs {tuple(data.input_shape)} and {data.num_classes} classes")
    return model


def _cmd_allocate(args) -> int:
    import math

    import pdbviz
    from pdbviz.analysis import pareto_front, parse_budgets, predicted_loss, sensitivity_metrics
    from pdbviz.analysis.entries import ALLOC_BITS

    data = pdbviz.load_dataset(args.dataset, root=args.root, download=args.download, train_subset=args.train_subset)
    model = _allocation_model(args, data)
    accuracy = 100 * pdbviz.evaluate(model, data)["accuracy"]
    frame = sensitivity_metrics(model, data, metrics=[args.metric], bits=ALLOC_BITS, n_samples=args.n_samples,
                                seed=args.seed)
    loss = predicted_loss(frame, args.metric, w_bits=ALLOC_BITS, a_bits=(32,))
    fronts = {}
    shape = "non-increasing" if args.monotone else "any shape"
    print(f"{args.metric} on {type(model).__name__} ({data.name}, float accuracy {accuracy:.2f}%); weight bits "
          f"from {', '.join(map(str, ALLOC_BITS))}, {shape}, inputs at 32 bits")
    rows, failed = [], 0
    for budget in args.budget:
        kind = next(iter(parse_budgets(budget)))
        label = f"{budget:g} bits" if isinstance(budget, float) else budget
        primary = "bops" if kind == "bops" else "memory"
        if primary not in fronts:
            fronts[primary] = pareto_front(model, loss, primary, monotone=args.monotone)
        front = fronts[primary]
        try:
            i = front.index(budget)
        except ValueError as err:
            rows.append((label, f"impossible: {str(err).split('is impossible: ')[-1]}"))
            failed += 1
            continue
        row = front.table.iloc[i]
        bops = f"{row.bops:.4g}" if math.isfinite(row.bops) else "n/a"
        rows.append((label, f"{front.schedule(i).to_string(model):<14} {row.avg_bits:8.3f} {row.weight_kib:10.2f} "
                             f"{bops:>10} {row.loss:14.6g}"))
    width = max(len("budget"), *(len(b) for b, _ in rows))
    print(f"{'budget':<{width}}  {'schedule':<14} {'avg bits':>8} {'KiB':>10} {'BOPs':>10} {'predicted loss':>14}")
    for budget, text in rows:
        print(f"{budget:<{width}}  {text}")
    return 1 if failed else 0


def _cmd_analyze(args) -> int:
    import time

    import pdbviz
    from pdbviz import plot
    from pdbviz.analysis import warm_up_umap

    t0 = time.perf_counter()
    warm = warm_up_umap(background=True)
    data = pdbviz.load_dataset(args.dataset, root=args.root, download=args.download, train_subset=args.train_subset)
    model = pdbviz.build_model(args.model, data.input_shape, data.num_classes, width=args.width, seed=args.seed)
    pdbviz.fit(model, data, epochs=args.epochs, lr=args.lr, seed=args.seed, progress=not args.quiet)
    prof = pdbviz.separability_profile(model, data, n_samples=args.n_samples, seed=args.seed)
    print(prof.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    figures = {f"profile_{m}": plot.profile_figure(prof, metric=m) for m in pdbviz.analysis.METRICS}
    if warm is not None:
        warm.join()
    emb = pdbviz.embed_layers(model, data, n_samples=args.n_samples, seed=args.seed)
    figures["umap_layers"] = plot.umap_grid(emb, classes=data.classes)
    meta = {"dataset": data.name, "model": args.model, "seeds": [args.seed]}
    formats = ("html",) if args.no_static else ("html", "svg", "pdf", "png")
    out = Path(args.out)
    from pdbviz._io import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "profile.csv", "w", encoding="utf-8") as fh:
        prof.to_csv(fh, index=False)
    try:
        plot.save_many(figures, out, formats, meta, include_plotlyjs="directory")
    except plot.StaticExportError as err:
        print(f"note: only HTML figures were written: {err}")
    print(f"\nwrote {out / 'profile.csv'} and {len(figures)} figures in {out}; wall time "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


def _cmd_lab(args) -> int:
    import importlib.util
    import os
    import secrets

    if importlib.util.find_spec("jupyterlab") is None:
        raise FileNotFoundError("JupyterLab is not installed in this environment; install it with: "
                                "pip install jupyterlab")
    token = args.token if args.token is not None else secrets.token_hex(24)
    from pdbviz._notebooks import copy_notebooks, packaged_notebooks

    source = packaged_notebooks()
    folder = Path(args.dir) if args.dir else Path.cwd() / NOTEBOOKS_FOLDER
    if folder.exists() and not folder.is_dir():
        raise FileNotFoundError(f"--dir {folder} is not a folder")
    import pdbviz

    if folder.resolve() == source.resolve() and source.parent == Path(pdbviz.__file__).resolve().parent:
        raise ValueError(f"--dir {folder} is the installed package's own notebooks folder, which pdbviz lab never "
                         "changes; give a folder of your own")
    try:
        copied, kept = copy_notebooks(source, folder, dry_run=args.dry_run)
    except OSError as err:  # not writable, or under a file
        raise ValueError(f"cannot write the notebooks into {folder} ({err.strerror or err}); choose another "
                         "folder with --dir") from None
    verb = "would copy" if args.dry_run else "copied"
    print(f"{verb} {len(copied)} notebook(s) into {folder}" + (f"; kept {len(kept)} already there" if kept else ""),
          flush=True)
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.ip={args.ip}", f"--ServerApp.port={args.port}",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={folder.resolve() if folder.exists() else folder}"]
    if args.no_browser:
        cmd.append("--no-browser")
    if os.geteuid() == 0 if hasattr(os, "geteuid") else False:
        cmd.append("--allow-root")
    print(f"JupyterLab on http://{args.ip}:{args.port}/lab?token={token}  (folder {folder})", flush=True)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover - execv does not return


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pdbviz`` command and its subcommands."""
    from pdbviz._version import __version__

    p = _Parser(prog="pdbviz", description="Explore mixed-precision quantized networks with progressively "
                                           "decreasing bitwidth.")
    p.add_argument("--version", action="version", version=f"pdbviz {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    m = sub.add_parser("memory", help="memory table of a model under a bit schedule (and its packed file size)",
                       description="Print the per-layer memory table of a model quantized with a schedule.")
    m.add_argument("--model", default="resnet18",
                   help="a pdbviz model (mlp, lenet, vgg-small, resnet20) or a torchvision model name (default resnet18)")
    m.add_argument("--schedule", default="8-4-2-1", help='one-line bit schedule, e.g. "8-4-2-1", "4/4", "2"')
    m.add_argument("--input-shape", type=int, nargs=3, default=(3, 32, 32), metavar=("C", "H", "W"))
    m.add_argument("--num-classes", type=int, default=10)
    m.add_argument("--packed", type=Path, help="also write the bit-packed model to this file and compare sizes")
    m.set_defaults(func=_cmd_memory)

    e = sub.add_parser("export", help="write a packed model (.pdbq) as QONNX, ONNX (QDQ) or a torchao config",
                       description="Write a bit-packed model as QONNX (Quant nodes at its bit-widths, for FINN and "
                                   "hls4ml), ONNX with int4/int8 weights (QDQ, for onnxruntime) or a torchao "
                                   "FqnToConfig (JSON). Zoo models are rebuilt from the file; other files need "
                                   "--model, --input-shape and --num-classes. Needs pip install \"pdbviz[export]\".")
    e.add_argument("packed", type=Path, metavar="MODEL.pdbq", help="a file written by save_packed")
    e.add_argument("--to", choices=("qonnx", "onnx", "torchao"), required=True, help="the format")
    e.add_argument("-o", "--output", type=Path, default=None,
                   help="the file to write (default: beside MODEL.pdbq, .qonnx.onnx / .onnx / .torchao.json)")
    e.add_argument("--model", default=None, help="zoo model name (mlp, lenet, vgg-small, resnet20), when the file "
                                                 "does not say")
    e.add_argument("--input-shape", type=_positive_int, nargs=3, default=None, metavar=("C", "H", "W"))
    e.add_argument("--num-classes", type=_positive_int, default=None)
    e.add_argument("--width", type=float, default=1.0)
    e.set_defaults(func=_cmd_export)

    from pdbviz.data import DATASETS
    from pdbviz.experiment import DEFAULT_SCHEDULES
    from pdbviz.models import MODELS

    d = sub.add_parser("demo", help="the headline comparison and the paper's claims, with a report "
                                    "(under a minute on a laptop CPU)",
                       description="Train a float VGG-Small (1/8 width) on the embedded digits for 3 seeds, "
                                   "fine-tune the homogeneous baselines (binary, 2 and 4 bits, ternary, LSQ), "
                                   "8-4-2-1, its increasing mirror and the separability allocation at 8-4-2-1's "
                                   "memory, print the table and the paper's claims with their confidence "
                                   "intervals, and write a report folder. --full: VGG-Small (1/4 width) on the "
                                   "embedded MNIST at 32x32, 5 seeds, longer training.")
    d.add_argument("--out", type=Path, default=Path("pdbviz-demo"), help="output folder (default pdbviz-demo)")
    d.add_argument("--full", action="store_true", help="the longer setting, for paper-grade numbers")
    d.add_argument("--seeds", type=_seed, nargs="+", default=None, help="seeds (default 0 1 2; --full 0..4)")
    d.add_argument("--epochs", type=_positive_int, default=None,
                   help="float training epochs (default 12; --full 30)")
    d.add_argument("--no-static", action="store_true", help="skip SVG/PDF/PNG figures (no Chromium needed)")
    d.add_argument("--no-umap", action="store_true", help="skip the UMAP figure")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(func=_cmd_demo)

    def data_args(sp):
        sp.add_argument("--dataset", choices=DATASETS, default="digits", help="dataset (default digits)")
        sp.add_argument("--root", type=Path, default=None, help="folder of downloaded datasets")
        sp.add_argument("--download", action="store_true", help="download the dataset if missing")
        sp.add_argument("--train-subset", type=_positive_int, default=None, help="use at most N training samples")
        sp.add_argument("--model", choices=MODELS, default="lenet", help="model (default lenet)")
        sp.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1)")
        sp.add_argument("--lr", type=float, default=3e-3, help="learning rate of float training (default 3e-3)")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        sp.add_argument("--no-static", action="store_true", help="skip SVG/PDF/PNG figures")

    def run_args(sp, out: str):
        sp.add_argument("--schedules", type=_schedule_list, default=list(DEFAULT_SCHEDULES),
                        help='schedules separated by ";", e.g. "float;2;halving;4/4;increasing;alloc:1.5" '
                             f'(default "{";".join(DEFAULT_SCHEDULES)}")')
        sp.add_argument("--epochs", type=_positive_int, default=20, help="float training epochs (default 20)")
        sp.add_argument("--finetune-epochs", type=_positive_int, default=3, help="fine-tune epochs (default 3)")
        sp.add_argument("--from-scratch", action="store_true", help="train each schedule from scratch for --epochs")
        sp.add_argument("--batch-size", type=_positive_int, default=64)
        sp.add_argument("--seeds", type=_seed, nargs="+", default=[0])
        sp.add_argument("--out", type=Path, default=Path(out), help=f"output folder (default {out})")

    c = sub.add_parser("compare", help="compare bit schedules on a dataset and write a report",
                       description="Compare bit schedules: float once per seed, each schedule fine-tuned from it.")
    data_args(c)
    run_args(c, "pdbviz-compare")
    c.set_defaults(func=_cmd_compare)

    sw = sub.add_parser("sweep", help="compare's runs as tasks on a dask cluster (local or remote), resumable",
                        description="Run every float model and every (schedule, seed) run as an independent task "
                                    "on dask.distributed: a local cluster (--workers) or a running scheduler "
                                    "(--scheduler). Each finished run is written to OUT/runs at once; running "
                                    "the same command again skips finished runs. Writes the same report as "
                                    "compare. Needs: pip install \"pdbviz[dask]\".")
    data_args(sw)
    run_args(sw, "pdbviz-sweep")
    where = sw.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None,
                       help="processes of the local cluster (default: one per core)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="address of a running dask scheduler, e.g. tcp://10.0.0.5:8786")
    sw.add_argument("--retries", type=_non_negative_int, default=2,
                    help="retries of a run whose worker dies, on the local cluster (default 2)")
    sw.set_defaults(func=_cmd_sweep)

    from pdbviz.analysis import SENSITIVITY_METRICS

    al = sub.add_parser("allocate", help="bit schedules that meet budgets, from a sensitivity metric of the float "
                                         "model",
                        description="Train a float model (or load it with --checkpoint), measure each layer's "
                                    "sensitivity with --metric, and print for each --budget the schedule with the "
                                    "least predicted loss (the exact front over weight bits 1, 2, 4, 8; inputs at "
                                    "32 bits): the budget, the one-line schedule, average bits, KiB, BOPs per "
                                    "sample and the predicted loss increase. The schedule string is what "
                                    "--schedules of compare and BitSchedule.from_string take.")
    al.add_argument("--dataset", choices=DATASETS, default="digits", help="dataset (default digits)")
    al.add_argument("--root", type=Path, default=None, help="folder of downloaded datasets")
    al.add_argument("--download", action="store_true", help="download the dataset if missing")
    al.add_argument("--train-subset", type=_positive_int, default=None, help="use at most N training samples")
    al.add_argument("--model", choices=MODELS, default="lenet", help="model (default lenet)")
    al.add_argument("--width", type=float, default=1.0, help="width multiplier (default 1)")
    al.add_argument("--checkpoint", type=Path, default=None,
                    help="a trained float model written by pdbviz.save_model (then nothing is trained and --model, "
                         "--width, --epochs, --lr are not used)")
    al.add_argument("--metric", choices=SENSITIVITY_METRICS, default="fisher", metavar="METRIC",
                    help=f"sensitivity metric, one of {', '.join(SENSITIVITY_METRICS)} (default fisher)")
    al.add_argument("--budget", type=_budget, action="append", required=True, metavar="B",
                    help="a budget: average bits ('2', '1.5 bits'), KiB ('40 KiB') or BOPs ('2e6 BOPs'); repeat "
                         "for several")
    al.add_argument("--monotone", action="store_true", help="weight bits never increase with depth")
    al.add_argument("--epochs", type=_positive_int, default=20, help="float training epochs (default 20)")
    al.add_argument("--lr", type=float, default=3e-3, help="learning rate of float training (default 3e-3)")
    al.add_argument("--seed", type=_seed, default=0)
    al.add_argument("--n-samples", type=_positive_int, default=1000, help="test samples measured (default 1000)")
    al.add_argument("--quiet", action="store_true", help="no progress bars")
    al.set_defaults(func=_cmd_allocate)

    a = sub.add_parser("analyze", help="separability profile and per-layer UMAP of a trained float model",
                       description="Train a float model, then measure class separability of each layer's input "
                                   "and draw UMAP views of every layer.")
    data_args(a)
    a.add_argument("--epochs", type=_positive_int, default=20)
    a.add_argument("--seed", type=_seed, default=0)
    a.add_argument("--n-samples", type=_positive_int, default=1000, help="test samples analysed (default 1000)")
    a.add_argument("--out", type=Path, default=Path("pdbviz-analyze"), help="output folder")
    a.set_defaults(func=_cmd_analyze)

    lab = sub.add_parser("lab", help="JupyterLab on a copy of the teaching notebooks (127.0.0.1, token on)",
                         description="Copy the teaching notebooks that came with pdbviz into a folder of yours "
                                     f"(default ./{NOTEBOOKS_FOLDER}; notebooks already there are kept as they are) "
                                     "and start JupyterLab there, bound to 127.0.0.1 with a token. The installed "
                                     "notebooks are never changed.")
    lab.add_argument("--port", type=_positive_int, default=8888)
    lab.add_argument("--ip", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    lab.add_argument("--token", default=None, help="access token (default: a random one)")
    lab.add_argument("--dir", default=None,
                     help=f"folder to copy the notebooks into and open (default ./{NOTEBOOKS_FOLDER})")
    lab.add_argument("--no-browser", action="store_true")
    lab.add_argument("--dry-run", action="store_true",
                     help="say what would be copied and print the command, without writing or running anything")
    lab.set_defaults(func=_cmd_lab)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the ``pdbviz`` command with ``argv`` (default: the process's arguments); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, AttributeError, ImportError) as err:
        print(f"pdbviz {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
