"""``pdbviz allocate`` and ``pdbviz analyze``: bit allocations from a sensitivity metric, and a float model's
separability profile and UMAP views."""

from __future__ import annotations

import time
from pathlib import Path

from .common import add_data_args, budget, positive_int, seed


def _allocation_model(args, data):
    """The float model of ``pdbviz allocate``: loaded from --checkpoint, or built and trained here."""
    import pdbviz
    from ..quant import model_info

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
    from ..analysis import pareto_front, predicted_loss, sensitivity_metrics
    from ..analysis.entries import ALLOC_BITS

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
    for label, limit in args.budget:
        primary = "bops" if limit.unit == "bops" else "memory"
        if primary not in fronts:
            fronts[primary] = pareto_front(model, loss, primary, monotone=args.monotone)
        front = fronts[primary]
        try:
            i = front.index(limit.limits())
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
    for label, text in rows:
        print(f"{label:<{width}}  {text}")
    return 1 if failed else 0


def _cmd_analyze(args) -> int:
    import pdbviz
    from .. import plot
    from .._io import atomic_write
    from ..analysis import warm_up_umap

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


def add_parsers(sub) -> None:
    """The ``allocate`` and ``analyze`` commands."""
    from ..analysis import METRIC_INFO
    from ..analysis.entries import ALLOC_BITS
    from ..data import DATASETS
    from ..models import MODELS

    metrics = list(METRIC_INFO)
    al = sub.add_parser("allocate", help="bit schedules that meet budgets, from a sensitivity metric of the float "
                                         "model",
                        description="Train a float model (or load it with --checkpoint), measure each layer's "
                                    "sensitivity with --metric, and print for each --budget the schedule with the "
                                    "least predicted loss (the exact front over weight bits "
                                    f"{', '.join(map(str, ALLOC_BITS))}; inputs at 32 bits): the budget, the "
                                    "one-line schedule, average bits, KiB, BOPs per sample and the predicted loss "
                                    "increase. The schedule string is what --schedules of compare and "
                                    "BitSchedule.from_string take.")
    add_data_args(al, DATASETS, MODELS)
    al.add_argument("--checkpoint", type=Path, default=None,
                    help="a trained float model written by pdbviz.save_model (then nothing is trained and --model, "
                         "--width, --epochs, --lr are not used)")
    al.add_argument("--metric", choices=metrics, default="fisher", metavar="METRIC",
                    help=f"sensitivity metric, one of {', '.join(metrics)} (default %(default)s)")
    al.add_argument("--budget", type=budget, action="append", required=True, metavar="B",
                    help="a budget: average bits ('2', '1.5 bits'), KiB ('40 KiB') or BOPs ('2e6 BOPs'); repeat "
                         "for several")
    al.add_argument("--monotone", action="store_true", help="weight bits never increase with depth")
    al.add_argument("--epochs", type=positive_int, default=20, help="float training epochs (default %(default)s)")
    al.add_argument("--seed", type=seed, default=0, help="seed of the model, its training and the samples measured "
                                                         "(default %(default)s)")
    al.add_argument("--n-samples", type=positive_int, default=1000,
                    help="test samples measured (default %(default)s)")
    al.set_defaults(func=_cmd_allocate)

    a = sub.add_parser("analyze", help="separability profile and per-layer UMAP of a trained float model",
                       description="Train a float model, then measure class separability of each layer's input "
                                   "and draw UMAP views of every layer.")
    add_data_args(a, DATASETS, MODELS)
    a.add_argument("--no-static", action="store_true", help="skip SVG/PDF/PNG figures")
    a.add_argument("--epochs", type=positive_int, default=20, help="float training epochs (default %(default)s)")
    a.add_argument("--seed", type=seed, default=0, help="seed of the model, its training and the samples analysed "
                                                        "(default %(default)s)")
    a.add_argument("--n-samples", type=positive_int, default=1000, help="test samples analysed (default %(default)s)")
    a.add_argument("--out", type=Path, default=Path("pdbviz-analyze"), help="output folder (default %(default)s)")
    a.set_defaults(func=_cmd_analyze)
