"""The selection pipeline: :func:`select_corpus`, the one call behind ``mprm select``, training's
selection step and the demo (METHOD.md 3-4, docs/selection.md).

From a corpus path to five files in ``out_dir``: ``manifest.jsonl`` (one row per non-empty input
line), ``selected.jsonl`` (the kept rollouts in the training format, file order, files in sorted
name order), ``report.json`` / ``report.md`` (the paper's Table 1 columns for corpus and subset)
and ``scores.png``. Bad input raises :class:`~mprm.data.validation.DataError` (strict) naming
``FILE:LINE: field: problem (value)``; bad paths and settings raise other
:class:`~mprm.errors.UserError` subclasses. Nothing is printed.

Steps (each function named is the real path; docs/selection.md "How it is fast"):

1. ``lines.corpus_files``: the files, sorted by name; source = file stem.
2. Pass 1, ``jsonl.scan_file`` per file (in worker processes for large inputs): per valid rollout
   the numbers BIS needs, rejected lines with reasons. While the workers read, this process
   imports what the following steps need (their modules, Pillow).
3. ``score_table`` (pass 1's columns as one table), ``selection.select_table``: k per source, ranking,
   the kept rows (D-DATA-1, D-DATA-3).
4. Pass 2, ``outputs.write_outputs`` / ``outputs.render_file`` per file (in the workers): the kept
   lines re-read by offset, turned into training rows (labels by ``labels.mc_targets``), and the
   manifest rows; meanwhile this process computes the report and draws the plot.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from mprm.data.jsonl import FileScan, scan_file
from mprm.data.lines import corpus_files
from mprm.data.outputs import OutputJob, write_outputs
from mprm.data.settings import SelectionResult, SelectionSettings, SelectionSettingsError, SourceCounts
from mprm.errors import UserError
from mprm.files import prepare_output_dir, remove_files

#: Below this many input bytes everything runs in this process: starting workers costs more
#: than it saves (measured, docs/selection.md).
POOL_MIN_BYTES = 16 << 20


def default_workers() -> int:
    """min(2, CPUs): pass 1 and 2 are memory-bound beyond two processes on the machines measured."""
    return min(2, os.cpu_count() or 1)


def _make_pool(workers: int, files: list[tuple[Path, str]]) -> Any:
    """A fork-based process pool of min(workers, files) processes, or None for one process (one
    worker, one file, or less than :data:`POOL_MIN_BYTES` of input). The workers inherit the
    modules imported so far (numpy, msgspec, orjson) instead of importing them again."""
    if workers <= 1 or len(files) <= 1 or sum(p.stat().st_size for p, _ in files) < POOL_MIN_BYTES:
        return None
    import multiprocessing

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method).Pool(min(workers, len(files)))


def _scan_job(job: tuple[str, str, bool, str, float]) -> FileScan:
    path, source, lenient, unannotated, threshold = job
    return scan_file(path, source=source, lenient=lenient, unannotated=unannotated, threshold=threshold)


def _bar(enabled: bool, total: int, desc: str) -> Any:
    """A tqdm bar on stderr when asked for and stderr is a terminal, else None (tqdm not imported)."""
    if not enabled or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="file", file=sys.stderr)


def _each(items: Iterable[Any], bar: Any) -> Iterable[Any]:
    for item in items:
        yield item
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()


#: What a selection writes besides scores.png; renamed into place together once complete.
OUTPUT_FILES = ("manifest.jsonl", "report.json", "report.md", "selected.jsonl")


def select_corpus(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    settings: SelectionSettings,
    out_dir: str | os.PathLike,
    *,
    workers: int | None = None,
    plot: bool = True,
    progress: bool = True,
) -> SelectionResult:
    """Select from a corpus (an annotations directory, ``.jsonl`` or ``.parquet`` files) into
    ``out_dir`` under ``settings`` (METHOD.md 2-4); returns what was written and counted.

    ``workers``: processes for the two passes (default :func:`default_workers`; inputs under
    :data:`POOL_MIN_BYTES` run in this process). ``plot``: draw ``scores.png``. ``progress``: tqdm
    bars on a terminal. Strict mode raises at the first bad line with no output written.
    The cyclic garbage collector is paused meanwhile: no cycles are made, and its passes over
    hundreds of thousands of objects cost time for nothing.
    """
    if not isinstance(settings, SelectionSettings):
        raise TypeError(f"settings must be a SelectionSettings, got {type(settings).__name__}")
    workers = default_workers() if workers is None else workers
    if type(workers) is not int or workers < 1:
        raise SelectionSettingsError(f"workers = {workers!r}: must be an integer >= 1")
    started = time.perf_counter()
    files = corpus_files(inputs)
    out = prepare_output_dir(out_dir)
    remove_files(out, OUTPUT_FILES)  # a run that fails must not leave an older run's outputs looking new
    gc_was_enabled = gc.isenabled()
    gc.disable()
    pool = _make_pool(workers, files)
    try:
        return _select(inputs, settings, files, out, pool, plot, progress, started)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        if gc_was_enabled:
            gc.enable()


def _select(inputs: Any, settings: SelectionSettings, files: list[tuple[Path, str]], out: Path, pool: Any,
            plot: bool, progress: bool, started: float) -> SelectionResult:
    """The steps of :func:`select_corpus` once the files, output folder and pool are set up."""
    scans = _scan_files(settings, files, pool, plot, progress)
    _require_rollouts(scans, files)
    table, group_ids, columns = score_table(scans)

    import numpy as np

    from mprm.data.report import RowStats
    from mprm.data.selection import select_table

    chosen = select_table(table, group_ids, [s.source for s in scans], strategy=settings.strategy,
                          fraction=settings.kept_fraction, alpha=settings.alpha, seed=settings.seed,
                          per_source=settings.per_source)
    kept = np.zeros(len(table), bool)
    kept[chosen.chosen] = True
    jobs = _output_jobs(scans, chosen, kept, out, settings)
    stats = RowStats(group_ids, table.n_steps, columns["n_err"], table.sum_mc, table.mixed(), columns["n_unannotated"])
    plot_path = out / "scores.png" if plot and len(table) else None

    def meanwhile() -> dict[str, Any]:
        report = _report(inputs, settings, scans, stats, chosen, kept)
        if plot_path is not None:
            _plot(plot_path, chosen.scores, kept, settings)
        return report

    report = _write_files(out, jobs, pool, progress, meanwhile, started)
    sources = {
        scan.source: SourceCounts(file=scan.file, lines=scan.n_lines, valid=len(scan), rejected=len(scan.rejected),
                                  k=chosen.k[scan.source] if settings.per_source else None,
                                  kept=int(jobs[i].kept.sum()))
        for i, scan in enumerate(scans)
    }
    return SelectionResult(
        out_dir=out, manifest=out / "manifest.jsonl", selected=out / "selected.jsonl", report_json=out / "report.json",
        report_md=out / "report.md", plot=plot_path, sources=sources, lines=report["input"]["lines"],
        valid=len(table), rejected=report["input"]["rejected"], kept=report["selected"],
        rejected_by_reason=dict(report["input"]["rejected_by_reason"]), seconds=report["seconds"],
    )


def _scan_files(settings: SelectionSettings, files: list[tuple[Path, str]], pool: Any, plot: bool,
                progress: bool) -> list[FileScan]:
    """Pass 1 over every file (in the pool's workers when there is one), in file order; strict mode
    raises the first file's first bad line. While the workers read, this process imports the
    modules of the next steps."""
    jobs = [(str(p), s, settings.lenient, settings.unannotated, settings.threshold) for p, s in files]
    results = pool.imap(_scan_job, jobs) if pool is not None else map(_scan_job, jobs)
    if pool is not None:
        import mprm.data.report  # noqa: F401
        import mprm.data.selection  # noqa: F401

        if plot:
            from PIL import Image, ImageDraw, ImageFont, PngImagePlugin  # noqa: F401
    scans: list[FileScan] = []
    for scan in _each(results, _bar(progress, len(files), "scan")):
        scans.append(scan)
        if scan.error is not None:
            raise scan.error
    return scans


def _require_rollouts(scans: list[FileScan], files: list[tuple[Path, str]]) -> None:
    """A :class:`UserError` when no file has a valid rollout (nothing to select from)."""
    if any(len(s) for s in scans):
        return
    lines = sum(s.n_lines for s in scans)
    rejected = sum(len(s.rejected) for s in scans)
    raise UserError(f"{', '.join(str(p) for p, _ in files)}: no valid rollout to select from ({lines} non-empty "
                    f"line(s), {rejected} rejected): point the input at a corpus with records"
                    + (" or fix the rejected lines (manifest of a --lenient run lists them)" if rejected else ""))


def score_table(scans: Sequence[FileScan]) -> tuple[Any, Any, dict[str, Any]]:
    """Pass 1's numbers of all files as one ``selection.ScoreTable`` (rows in file order), each
    row's file index (the group ``selection.select_table`` ranks it in) and the report's columns
    (``n_err``, ``n_unannotated``)."""
    import numpy as np

    from mprm.data.selection import ScoreTable

    def column(name: str) -> np.ndarray:
        dtype = np.float64 if name == "sum_mc" else np.int64
        return np.concatenate([getattr(s, name) for s in scans]).astype(dtype) if scans else np.zeros(0, dtype)

    group_ids = np.repeat(np.arange(len(scans), dtype=np.int64), [len(s) for s in scans])
    table = ScoreTable(column("n_steps"), column("n_pos"), column("sum_mc"))
    return table, group_ids, {"n_err": column("n_err"), "n_unannotated": column("n_unannotated")}


def _output_jobs(scans: list[FileScan], chosen: Any, kept: Any, out: Path,
                 settings: SelectionSettings) -> list[OutputJob]:
    """Pass 2's job per file: its rows' ranking scores and kept flags, and how to label."""
    bounds = [0, *itertools.accumulate(len(s) for s in scans)]
    return [OutputJob(scan, chosen.scores[a:b], kept[a:b], str(out), i, threshold=settings.threshold,
                      soft=settings.soft_labels, unannotated=settings.unannotated)
            for i, (scan, a, b) in enumerate(zip(scans, bounds[:-1], bounds[1:]))]


def _write_files(out: Path, jobs: list[OutputJob], pool: Any, progress: bool, meanwhile: Callable[[], dict[str, Any]],
                 started: float) -> dict[str, Any]:
    """Pass 2 and the reports: every output is written under a temporary name and renamed into
    place together at the end, so a failed or killed run leaves no selected.jsonl / manifest.jsonl /
    report that looks complete. ``meanwhile`` (the report and the plot) runs while the workers
    write; returns ``report.json``'s content."""
    report: dict[str, Any] = {}
    tmp = {name: out / f".{name}.{os.getpid()}.tmp" for name in OUTPUT_FILES}
    try:
        write_outputs(tmp["selected.jsonl"], tmp["manifest.jsonl"], jobs, pool=pool,
                      progress=_bar(progress, len(jobs), "write"), meanwhile=lambda: report.update(meanwhile()))
        from mprm.data.report import render_markdown

        report["seconds"] = round(time.perf_counter() - started, 3)
        tmp["report.json"].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        tmp["report.md"].write_text(render_markdown(report), encoding="utf-8")
        for name in OUTPUT_FILES:
            os.replace(tmp[name], out / name)
    finally:
        for path in tmp.values():
            path.unlink(missing_ok=True)
    return report


def _report(inputs: Any, settings: SelectionSettings, scans: list[FileScan], stats: Any, chosen: Any,
            kept: Any) -> dict[str, Any]:
    """``report.json`` without ``seconds``: parameters, input accounting, k, the corpus and subset
    statistics (``mprm.data.report.table_stats``; Table 1 columns)."""
    from mprm.data.report import table_stats

    names = [s.source for s in scans]
    rejected = Counter(code for s in scans for _, _, _, code in s.rejected)
    shown = str(inputs) if isinstance(inputs, (str, os.PathLike)) else [str(p) for p in inputs]
    return {
        "parameters": {"input": shown, **settings.parameters()},
        "input": {
            "files": [s.file for s in scans],
            "lines": sum(s.n_lines for s in scans),
            "valid": int(len(stats.n_steps)),
            "rejected": sum(len(s.rejected) for s in scans),
            "rejected_by_reason": dict(sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0]))),
            "unannotated_steps": int(stats.n_unannotated.sum()),
            "rollouts_with_unannotated": int((stats.n_unannotated > 0).sum()),
        },
        "k": chosen.k,
        "selected": int(kept.sum()),
        "corpus": table_stats(stats, names),
        "subset": table_stats(stats, names, chosen.chosen),
    }


def _plot(path: Path, scores: Any, kept: Any, settings: SelectionSettings) -> None:
    from mprm.data.report import plot_scores

    labels = {"reliable": "R (mean MC of positive steps)", "low_mc": "mean step MC"}
    plot_scores(path, scores, kept, label=labels.get(settings.strategy, f"BIS (alpha={settings.alpha})"))

