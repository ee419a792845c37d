"""The ``pdbviz`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    table = pdbviz.memory_table(q)
    s = table.attrs["summary"]
    print(table.to_string(index=False))
    print(f"\nquantized weights {s.quantized_weight_kib:,.1f} KiB  (float-32 {s.float32_weight_kib:,.1f} KiB, "
          f"{s.compression:.1f}x smaller, {s.avg_bits:.2f} average bits)")
    print(f"other float parameters and buffers {s.other_kib:,.1f} KiB; total {s.total_kib:,.1f} KiB")
    if args.packed:
        path = pdbviz.save_packed(q, args.packed)
        size = path.stat().st_size / 1024
        print(f"packed file {path}: {size:,.1f} KiB ({100 * (size / s.total_kib - 1):+.2f}% of the table's total)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pdbviz import __version__

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
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError, AttributeError) as err:
        print(f"pdbviz {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
