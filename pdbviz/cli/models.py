"""``pdbviz memory`` and ``pdbviz export``: a quantized model's memory, and its packed file in other formats."""

from __future__ import annotations

from pathlib import Path

from .common import positive_float, positive_int


def named_model(name: str, input_shape, num_classes: int):
    """A pdbviz zoo model or a torchvision classification model, by name (random weights)."""
    import torchvision

    import pdbviz
    from ..models import MODELS

    if name in MODELS:
        return pdbviz.build_model(name, tuple(input_shape), num_classes)
    if name in torchvision.models.list_models(module=torchvision.models):
        return torchvision.models.get_model(name, num_classes=num_classes)
    raise ValueError(f"unknown --model {name!r}; use one of {', '.join(MODELS)} or a torchvision "
                     "classification model such as resnet18")


def _cmd_memory(args) -> int:
    import pdbviz

    model = named_model(args.model, args.input_shape, args.num_classes)
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
    from ..export import TorchaoExport, export_model, formats
    from ..quant.packing import read_packed_header

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
    out = args.output or args.packed.with_name(args.packed.name.removesuffix(".pdbq")
                                                  + next(f.suffix for f in formats() if f.name == args.to))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export_model(q, out, to=args.to)
    packed_kib, table = args.packed.stat().st_size / 1024, pdbviz.memory_summary(q)
    if isinstance(result, TorchaoExport):
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


def add_parsers(sub) -> None:
    """The ``memory`` and ``export`` commands."""
    from ..export import formats
    from ..models import MODELS
    from ..quant.quantizers import WEIGHT_QUANTIZERS

    zoo = ", ".join(MODELS)
    m = sub.add_parser("memory", help="memory table of a model under a bit schedule (and its packed file size)",
                       description="Print the per-layer memory table of a model quantized with a schedule.")
    m.add_argument("--model", default="resnet18",
                   help=f"a pdbviz model ({zoo}) or a torchvision model name (default %(default)s)")
    m.add_argument("--schedule", default="8-4-2-1",
                   help='one-line bit schedule, e.g. "8-4-2-1", "4/4", "2", or with a weight quantizer '
                        f'("symmetric:2"; quantizers: {", ".join(WEIGHT_QUANTIZERS)}) (default %(default)s)')
    m.add_argument("--input-shape", type=positive_int, nargs=3, default=(3, 32, 32), metavar=("C", "H", "W"),
                   help="input channels, height and width of a pdbviz model (default 3 32 32)")
    m.add_argument("--num-classes", type=positive_int, default=10, help="number of classes (default %(default)s)")
    m.add_argument("--packed", type=Path, help="also write the bit-packed model to this file and compare sizes")
    m.set_defaults(func=_cmd_memory)

    e = sub.add_parser("export", help="write a packed model (.pdbq) as QONNX, ONNX (QDQ) or a torchao config",
                       description="Write a bit-packed model as QONNX (Quant nodes at its bit-widths, for FINN and "
                                   "hls4ml), ONNX with int4/int8 weights (QDQ, for onnxruntime) or a torchao "
                                   "FqnToConfig (JSON). Zoo models are rebuilt from the file; other files need "
                                   "--model, --input-shape and --num-classes. Needs pip install \"pdbviz[export]\".")
    e.add_argument("packed", type=Path, metavar="MODEL.pdbq", help="a file written by save_packed")
    e.add_argument("--to", choices=[f.name for f in formats()], required=True,
                   help="the format: " + "; ".join(f"{f.name}: {f.description}" for f in formats()))
    e.add_argument("-o", "--output", type=Path, default=None,
                   help="the file to write (default: beside MODEL.pdbq, " + " / ".join(f.suffix for f in formats())
                        + ")")
    e.add_argument("--model", default=None, help=f"zoo model name ({zoo}), when the file does not say")
    e.add_argument("--input-shape", type=positive_int, nargs=3, default=None, metavar=("C", "H", "W"),
                   help="input channels, height and width, with --model")
    e.add_argument("--num-classes", type=positive_int, default=None, help="number of classes, with --model")
    e.add_argument("--width", type=positive_float, default=1.0,
                   help="width multiplier, with --model (default %(default)g)")
    e.set_defaults(func=_cmd_export)
