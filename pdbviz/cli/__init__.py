"""The ``pdbviz`` command: one module per group of subcommands.

``models`` (memory, export), ``audit``, ``runs`` (demo, compare, sweep), ``analysis``
(allocate, analyze) and ``lab``; ``common`` holds the parser, its help layout
(no word cut across lines), the argument types and the report printout.
"""

from __future__ import annotations

import argparse
import sys

from .common import EXIT_USAGE, Parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pdbviz`` command and its subcommands.

    Example:
        >>> build_parser().parse_args(["compare", "--schedules", "float;8-4-2-1"]).schedules
        ['float', '8-4-2-1']
    """
    from .._version import __version__
    from . import analysis, audit, lab, models, runs

    p = Parser(prog="pdbviz", description="Explore mixed-precision quantized networks with progressively "
                                          "decreasing bitwidth.")
    p.add_argument("--version", action="version", version=f"pdbviz {__version__}", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, help="the command to run")
    for group in (models, audit, runs, analysis, lab):
        group.add_parsers(sub)
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


__all__ = ["EXIT_USAGE", "build_parser", "main"]
