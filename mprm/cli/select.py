"""``mprm select``: pick a training subset by BIS or a baseline (METHOD.md 3-4) and account for
every input line.

Writes into ``--output``: ``manifest.jsonl`` (one row per non-empty input line),
``selected.jsonl`` (the kept rollouts in the training format, file order, files in sorted name
order), ``report.json`` / ``report.md`` and ``scores.png``. Exit 0 on success, 2 on bad input
or bad arguments. Two passes over the files, both in ``--workers`` processes: ``mprm.data.jsonl``
reads every line once for the ranking numbers; ``mprm.data.outputs`` re-reads only the chosen
lines and writes them with the manifest (docs/selection.md, "How it is fast").
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from mprm.data.jsonl import FileScan, make_pool, scan_corpus
from mprm.data.outputs import OutputJob, write_outputs
from mprm.data.readers import corpus_files
from mprm.data.report import RowStats, plot_scores, table_stats, write_reports
from mprm.data.selection import STRATEGIES, ScoreTable, select_table
from mprm.data.validation import UNANNOTATED_MODES, DataError


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
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes reading files in parallel (default: min(2, CPUs))")
    parser.add_argument("--no-plot", action="store_true", help="do not draw scores.png")
    parser.add_argument("--output", required=True, help="output directory")


def _fail(message: str) -> int:
    print(f"mprm select: error: {message}", file=sys.stderr)
    return 2


def _concat(scans: list[FileScan], name: str) -> np.ndarray:
    """One column of every scan, concatenated in file order."""
    columns = [getattr(s, name) for s in scans]
    return np.concatenate(columns) if columns else np.zeros(0, np.float64 if name == "sum_mc" else np.int64)


def run(args: argparse.Namespace) -> int:
    """Run the selection; the cyclic garbage collector is paused meanwhile (no cycles are made,
    and its passes over hundreds of thousands of objects cost time for nothing)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(args)
    finally:
        if gc_was_enabled:
            gc.enable()


def _plot(path: Path, scores: np.ndarray, kept: np.ndarray, strategy: str, alpha: float) -> None:
    label = {"reliable": "R (mean MC of positive steps)", "low_mc": "mean step MC"}.get(strategy, f"BIS (alpha={alpha})")
    plot_scores(path, scores, kept, label=label)


def _run(args: argparse.Namespace) -> int:
    if args.fraction is None and args.strategy != "full":
        return _fail(f"--fraction is required for --strategy {args.strategy}")
    if args.workers < 1:
        return _fail(f"--workers must be >= 1, got {args.workers}")
    try:
        files = corpus_files(args.input)
    except (FileNotFoundError, ValueError) as exc:
        return _fail(str(exc))
    stems = Counter(source for _, source in files)
    if any(c > 1 for c in stems.values()):
        return _fail(f"two input files share a source name: {sorted(n for n, c in stems.items() if c > 1)}")
    out_dir = Path(args.output)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    pool = make_pool(args.workers, len(files))
    try:
        return _select(args, files, out_dir, pool, started)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _select(args: argparse.Namespace, files: list[tuple[Path, str]], out_dir: Path, pool: Any, started: float) -> int:
    threshold = 0.0 if args.soft_labels else args.label_threshold
    fraction = 1.0 if args.strategy == "full" else args.fraction
    from tqdm import tqdm

    with tqdm(total=len(files), desc="scan", unit="file", file=sys.stderr, disable=None) as bar:
        scans = scan_corpus(files, lenient=args.lenient, unannotated=args.unannotated, threshold=threshold,
                            pool=pool, progress=bar)
    errors = [s.error for s in scans if s.error is not None]
    if errors:
        error: DataError = errors[0]
        print(f"{error}", file=sys.stderr)
        print("mprm select: stopped at the first bad record (strict mode); --lenient skips and counts bad records", file=sys.stderr)
        return 2

    names = [s.source for s in scans]
    sizes = [len(s) for s in scans]
    group_ids = np.repeat(np.arange(len(scans), dtype=np.int64), sizes)
    table = ScoreTable(_concat(scans, "n_steps"), _concat(scans, "n_pos"), _concat(scans, "sum_mc"))
    result = select_table(table, group_ids, names, strategy=args.strategy, fraction=fraction, alpha=args.alpha,
                          seed=args.seed, per_source=not args.global_)
    kept = np.zeros(len(table), bool)
    kept[result.chosen] = True

    bounds = np.cumsum([0, *sizes])
    jobs = [OutputJob(scan, result.scores[a:b], kept[a:b], str(out_dir), i, threshold=threshold, soft=bool(args.soft_labels),
                      unannotated=args.unannotated) for i, (scan, a, b) in enumerate(zip(scans, bounds[:-1], bounds[1:]))]
    with tqdm(total=len(jobs), desc="write", unit="file", file=sys.stderr, disable=None) as bar:
        write_outputs(out_dir / "selected.jsonl", out_dir / "manifest.jsonl", jobs, pool=pool, progress=bar)

    stats = RowStats(group_ids, table.n_steps, _concat(scans, "n_err"), table.sum_mc, table.mixed(),
                     _concat(scans, "n_unannotated"))
    rejected = Counter(code for s in scans for _, _, _, code in s.rejected)
    report = {
        "parameters": {
            "input": str(args.input), "strategy": args.strategy, "fraction": fraction, "alpha": args.alpha,
            "seed": args.seed, "per_source": not args.global_, "label_threshold": threshold,
            "soft_labels": bool(args.soft_labels), "unannotated": args.unannotated, "lenient": bool(args.lenient),
        },
        "input": {
            "files": [s.file for s in scans],
            "lines": sum(s.n_lines for s in scans),
            "valid": len(table),
            "rejected": sum(len(s.rejected) for s in scans),
            "rejected_by_reason": dict(sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0]))),
            "unannotated_steps": int(stats.n_unannotated.sum()),
            "rollouts_with_unannotated": int((stats.n_unannotated > 0).sum()),
        },
        "k": result.k,
        "selected": int(kept.sum()),
        "corpus": table_stats(stats, names),
        "subset": table_stats(stats, names, result.chosen),
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_reports(out_dir, report)
    if not args.no_plot and len(table):
        _plot(out_dir / "scores.png", result.scores, kept, args.strategy, args.alpha)
    print(f"mprm select: kept {int(kept.sum()):,} of {len(table):,} valid rollouts "
          f"({report['input']['rejected']:,} rejected) -> {out_dir}", file=sys.stderr)
    return 0
