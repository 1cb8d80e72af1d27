"""``mprm select``: pick a training subset by BIS or a baseline (METHOD.md 3-4) and account for
every input line.

Parses the flags into a :class:`~mprm.data.settings.SelectionSettings` and calls
:func:`mprm.data.pipeline.select_corpus`, which writes into ``--output``: ``manifest.jsonl``,
``selected.jsonl``, ``report.json`` / ``report.md`` and ``scores.png`` (docs/selection.md).
Exit 0 on success; 2 on bad arguments or bad input, with one line on stderr
(``mprm.errors.run_entry``).
"""

from __future__ import annotations

import argparse
import sys
from fractions import Fraction

from mprm.data.settings import STRATEGIES, SelectionSettings
from mprm.data.validation import UNANNOTATED_MODES, DataError
from mprm.errors import UserError, run_entry

PROG = "mprm select"


def _fraction(text: str) -> float:
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _threshold(text: str) -> float:
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a number or K/N fraction: {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="annotations directory, .jsonl or .parquet file")
    parser.add_argument("--strategy", required=True, choices=STRATEGIES, help="selection rule (METHOD.md 3-4)")
    parser.add_argument("--fraction", type=_fraction, default=None, help="kept fraction rho in (0, 1], e.g. 0.1; required unless --strategy full")
    parser.add_argument("--alpha", type=float, default=0.05, help="BIS alpha (METHOD.md 3; 0.05 at 25%%, 0.2 at 10%% in the authors' code)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random and mixed baselines")
    parser.add_argument("--global", dest="global_", action="store_true", help="rank all sources together instead of per source")
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument("--label-threshold", type=_threshold, default=0.0, help="hard labels y = 1[s > T]; T like 0, 0.0625 or 1/16 (METHOD.md 2)")
    labels.add_argument("--soft-labels", action="store_true", help="soft labels: the target is the MC score itself")
    parser.add_argument("--unannotated", choices=UNANNOTATED_MODES, default="negative",
                        help="steps with num_mc_total == 0: 'negative' counts their 0.0 as a measured negative (paper); 'truncate' cuts the rollout before the first one")
    parser.add_argument("--lenient", action="store_true", help="skip and count bad records instead of stopping at the first")
    parser.add_argument("--workers", type=int, default=None, help="processes reading files in parallel (default: min(2, CPUs); small inputs use one)")
    parser.add_argument("--no-plot", action="store_true", help="do not draw scores.png")
    parser.add_argument("--output", required=True, help="output directory")


def settings_from_args(args: argparse.Namespace) -> SelectionSettings:
    """The flags as :class:`SelectionSettings` (raises a UserError naming the flag to fix)."""
    if args.fraction is None and args.strategy != "full":
        raise UserError(f"--fraction is required for --strategy {args.strategy}: the kept share, e.g. 0.1")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    return SelectionSettings(
        strategy=args.strategy, fraction=args.fraction, alpha=args.alpha, seed=args.seed, per_source=not args.global_,
        label_threshold=args.label_threshold, soft_labels=bool(args.soft_labels),
        unannotated=args.unannotated, lenient=bool(args.lenient))


def run(args: argparse.Namespace) -> int:
    """Exit code of ``mprm select``: 0, or 2 with one line ``mprm select: error: ...``; a bad
    record in strict mode adds a second line saying how to skip bad records."""
    strict_stop: list[DataError] = []

    def main() -> int:
        from mprm.data.pipeline import select_corpus

        settings = settings_from_args(args)
        try:
            result = select_corpus(args.input, settings, args.output, workers=args.workers, plot=not args.no_plot)
        except DataError as exc:
            strict_stop.append(exc)
            raise
        print(f"{PROG}: {result.summary()}", file=sys.stderr)
        return 0

    code = run_entry(PROG, main)
    if strict_stop and code == 2:
        print(f"{PROG}: stopped at the first bad record (strict mode); --lenient skips and counts bad records",
              file=sys.stderr)
    return code
