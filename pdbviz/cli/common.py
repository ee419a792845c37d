"""What every ``pdbviz`` command shares: the parser and its help layout, argument types, the report printout."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import NamedTuple

from .._checks import NON_NEGATIVE_INT, POSITIVE_INT, POSITIVE_REAL, Constraint

#: exit status of a command given bad arguments (argparse's convention).
EXIT_USAGE = 2


class HelpFormatter(argparse.HelpFormatter):
    """argparse's layout, but a word is never cut: a long default (``"float;1;2;..."``) or a schedule
    (``8-4-2-1``) stays whole on one line."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = self._whitespace_matcher.sub(" ", text).strip()
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent, break_long_words=False,
                             break_on_hyphens=False)


class Parser(argparse.ArgumentParser):
    """Bad arguments: one clear line and exit code 2; help laid out by ``HelpFormatter``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _typed(convert, constraint: Constraint, name: str):
    """An argparse type: ``convert(text)`` checked against ``constraint``; the message says what is allowed."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not constraint.accepts(value):
            raise argparse.ArgumentTypeError(f"expected {constraint.describe()}, got {text!r}")
        return value

    parse.__name__ = name  # argparse names the type in some messages
    return parse


positive_int = _typed(int, POSITIVE_INT, "positive_int")
non_negative_int = _typed(int, NON_NEGATIVE_INT, "non_negative_int")
positive_float = _typed(float, POSITIVE_REAL, "positive_float")


def seed(text: str) -> int:
    """A seed: any integer."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers, got {text!r}") from None


def schedule_list(text: str) -> list[str]:
    """Schedule entries separated by ``;``."""
    items = [s.strip() for s in text.split(";") if s.strip()]
    if not items:
        raise argparse.ArgumentTypeError("give at least one schedule, separated by ';'")
    return items


class BudgetArg(NamedTuple):
    """A ``--budget`` as the user wrote it (its label in the printout) and its typed ``Budget``."""

    label: str
    budget: object


def budget(text: str) -> BudgetArg:
    """A budget of ``pdbviz allocate``: a plain number is average bits, else a string such as ``'40 KiB'``."""
    from ..analysis.entries import Budget

    try:
        value = float(text)
    except ValueError:
        value = text
    try:
        parsed = Budget.parse(value)
    except ValueError as err:
        message = str(err) if isinstance(value, str) else (
            f"budget must be a positive number of average bits or a string like '40 KiB' or '2e6 BOPs', got {text!r}")
        raise argparse.ArgumentTypeError(message) from None
    return BudgetArg(f"{value:g} bits" if isinstance(value, float) else text, parsed)


def add_data_args(sp: argparse.ArgumentParser, datasets, models) -> None:
    """The options that choose the data and the model."""
    sp.add_argument("--dataset", choices=datasets, default="digits", help="dataset (default %(default)s)")
    sp.add_argument("--root", type=Path, default=None, help="folder of downloaded datasets")
    sp.add_argument("--download", action="store_true", help="download the dataset if missing")
    sp.add_argument("--train-subset", type=positive_int, default=None, help="use at most N training samples")
    sp.add_argument("--model", choices=models, default="lenet", help="model (default %(default)s)")
    sp.add_argument("--width", type=positive_float, default=1.0, help="width multiplier (default %(default)g)")
    sp.add_argument("--lr", type=positive_float, default=3e-3,
                    help="learning rate of float training (default %(default)g)")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")


def print_results(results, seconds: float, info: dict) -> None:
    """The table, the paper's claims and what was written, after a comparison."""
    from ..claims import claims_text
    from ..stats import POWER

    print()
    print(results.pretty())
    print("\nThe paper's claims on these runs (95% CI for new seeds and new test images; a claim within noise "
          f"gives the minimum detectable effect at {POWER:.0%} power and the seeds or test images that would "
          "decide it):")
    print(claims_text(results.claims()))
    out = Path(info["report"]).parent
    print(f"\nwrote {info['report']} (opens offline), {out / 'results.csv'}, {out / 'results.json'}, "
          f"{out / 'table.tex'} and {len(info['figures'])} figures in {out / 'figures'}")
    if info.get("static_error"):
        print(f"note: only HTML figures were written: {info['static_error']}")
    print(f"wall time {seconds:.1f} s")
