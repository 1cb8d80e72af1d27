"""Fast two-pass access to corpus files, for selection at VisualPRM400K scale (565K rollouts).

Pass 1 (:func:`scan_file`) reads every line once and keeps only what ranking and reports need:
per valid rollout its line, byte offset and length, id, and five numbers (scored steps,
positive steps, sum of MC scores, steps labelled 0 under tau, unannotated steps); rejected lines
keep their reason. No step text is held, so memory stays small. Pass 2 (:func:`write_kept`)
re-reads only the chosen lines and writes them in the training format.

A line is first decoded with a typed msgspec schema that checks in C what it can (JSON syntax,
types, score range, non-negative counts); when that and a few bulk checks pass, the line is valid
by the rule of ``mprm.data.validation`` for certain. Everything else goes through that module's
precise path, which decides and names the problem. Both paths produce the same numbers
(tests/data/test_scan.py). Files are scanned in parallel worker processes when asked.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from operator import attrgetter, gt
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional, Union

import msgspec
import orjson

from mprm.data.validation import (
    DataError,
    RecordError,
    build_checked,
    check_rollout,
    parse_json_line,
    record_id,
    training_dict,
)

_UTF8_BOM = b"\xef\xbb\xbf"


class _FastStep(msgspec.Struct):
    step: str
    score: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    num_mc_correct: Optional[Annotated[int, msgspec.Meta(ge=0)]] = None
    num_mc_total: Optional[Annotated[int, msgspec.Meta(ge=0)]] = None


class _FastLine(msgspec.Struct):
    image: Union[str, list[str]]
    steps_with_score: list[_FastStep]
    question: Any = None
    question_orig: Any = None
    id: Any = None


_DECODER = msgspec.json.Decoder(_FastLine)
_TEXT = attrgetter("step")
_SCORE = attrgetter("score")
_CORRECT = attrgetter("num_mc_correct")
_TOTAL = attrgetter("num_mc_total")


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, raw bytes)`` of every non-empty line (1-based numbers).

    The raw bytes exclude the newline. A UTF-8 byte-order mark at the start is skipped.
    """
    with open(path, "rb") as f:
        data = f.read()
    offset = 3 if data.startswith(_UTF8_BOM) else 0
    if offset:
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw and not raw.isspace():
            yield number, offset, raw
        offset += len(raw) + 1


def _numbers(scores: list[float], threshold: float) -> tuple[int, int, float, int]:
    """(n scored steps, n_pos with s_j > 0, sum of s_j, steps labelled 0 under tau).

    Scores are validated to lie in [0, 1], so s_j > 0 is s_j != 0 and the sum of all scores is
    the sum over the positives (METHOD.md 3). ``math.fsum`` makes the sum exact then rounded
    once, independent of the Python version.
    """
    n = len(scores)
    n_pos = n - scores.count(0.0)
    n_err = n - n_pos if threshold == 0.0 else sum(map(threshold.__ge__, scores))
    return n, n_pos, math.fsum(scores), n_err


def _fast(raw: bytes, unannotated: str) -> tuple[Any, list[float], int] | None:
    """(id, scores, unannotated steps) when the line is certainly valid, else None."""
    if not raw.isascii():
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        rec = _DECODER.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    image = rec.image
    if type(image) is str:
        if not image.strip():
            return None
    elif not image or not all(map(str.strip, image)):
        return None
    orig = rec.question_orig
    if not (type(orig) is str and orig.strip()) and type(rec.question) is not str:
        return None
    steps = rec.steps_with_score
    if not steps:
        return None
    texts = list(map(_TEXT, steps))
    if not all(texts) or any(map(str.isspace, texts)):
        return None
    correct = list(map(_CORRECT, steps))
    total = list(map(_TOTAL, steps))
    if None in correct or None in total:
        if any(c is not None and t is not None and c > t for c, t in zip(correct, total)):
            return None
    elif any(map(gt, correct, total)):
        return None
    scores = list(map(_SCORE, steps))
    n_unannotated = total.count(0)
    if n_unannotated and unannotated == "truncate":
        cut = total.index(0)
        if cut == 0:
            return None
        scores = scores[:cut]
    return rec.id, scores, n_unannotated


@dataclass
class FileScan:
    """Pass-1 result for one file: ranking numbers of its valid rollouts, reasons of the rest.

    ``rows`` holds one tuple per valid rollout, in file order: (line, byte offset, byte size,
    id, n scored steps, n_pos, sum of MC scores, steps labelled 0 under tau, unannotated steps).
    ``rejected`` holds (line, id, reason, reason code) per rejected line.
    """

    path: str
    file: str
    source: str
    rows: list[tuple[int, int, int, str, int, int, float, int, int]] = field(default_factory=list)
    rejected: list[tuple[int, str, str, str]] = field(default_factory=list)
    error: DataError | None = None
    n_lines: int = 0

    def column(self, i: int) -> list[Any]:
        return [row[i] for row in self.rows]


def _records(path: Path) -> Iterator[tuple[int, int, int, Any]]:
    """(line, offset, size, parsed object or RecordError) for a .jsonl or .parquet file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        row = 0
        for batch in pq.ParquetFile(path).iter_batches():
            for obj in batch.to_pylist():
                row += 1
                yield row, row - 1, 1, obj
        return
    for line, offset, raw in iter_lines(path):
        yield line, offset, len(raw), raw


def scan_file(
    path: str | os.PathLike,
    *,
    source: str,
    lenient: bool = False,
    unannotated: str = "negative",
    threshold: float = 0.0,
) -> FileScan:
    """Pass 1 over one file. Strict mode stops at the first bad line and sets ``error``."""
    path = Path(path)
    scan = FileScan(path=str(path), file=path.name, source=source)
    keep = scan.rows.append
    for line, offset, size, item in _records(path):
        scan.n_lines += 1
        if isinstance(item, bytes):
            fast = _fast(item, unannotated)
            if fast is not None:
                rid, scores, n_unann = fast
                rid = f"{source}:{line}" if rid is None else str(rid)
                keep((line, offset, size, rid, *_numbers(scores, threshold), n_unann))
                continue
        obj = None
        try:
            obj = parse_json_line(item) if isinstance(item, bytes) else item
            checked = check_rollout(obj, unannotated=unannotated)
        except RecordError as err:
            if not lenient:
                scan.error = DataError(str(path), line, err.reason)
                return scan
            scan.rejected.append((line, record_id(obj, source, line), err.reason, err.code))
            continue
        rid = checked.id if checked.id is not None else f"{source}:{line}"
        keep((line, offset, size, rid, *_numbers(checked.scores, threshold), checked.n_unannotated))
    return scan


def _scan_job(job: tuple[str, str, bool, str, float]) -> FileScan:
    path, source, lenient, unannotated, threshold = job
    return scan_file(path, source=source, lenient=lenient, unannotated=unannotated, threshold=threshold)


def _pool(workers: int, jobs: int) -> ProcessPoolExecutor | None:
    if workers <= 1 or jobs <= 1:
        return None
    import multiprocessing

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=min(workers, jobs), mp_context=multiprocessing.get_context(method))


def scan_corpus(
    files: list[tuple[Path, str]],
    *,
    lenient: bool = False,
    unannotated: str = "negative",
    threshold: float = 0.0,
    workers: int = 1,
    progress: Any = None,
) -> list[FileScan]:
    """Pass 1 over ``(path, source)`` pairs, in that order; ``progress`` is a tqdm bar or None."""
    jobs = [(str(p), s, lenient, unannotated, threshold) for p, s in files]
    pool = _pool(workers, len(jobs))
    results: list[FileScan] = []
    try:
        mapped = pool.map(_scan_job, jobs) if pool else map(_scan_job, jobs)
        for scan in mapped:
            results.append(scan)
            if progress is not None:
                progress.update(1)
    finally:
        if pool:
            pool.shutdown()
    return results


def kept_lines(
    path: str | os.PathLike,
    rows: list[tuple[int, int, int]],
    *,
    source: str,
    threshold: float = 0.0,
    soft: bool = False,
    unannotated: str = "negative",
) -> bytes:
    """Pass 2: the training-format lines (``selected.jsonl``) of the chosen ``(line, offset, size)``."""
    path = Path(path)
    out: list[bytes] = []
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        objs = table.take([offset for _, offset, _ in rows]).to_pylist()
        pairs = zip((line for line, _, _ in rows), objs)
    else:
        with open(path, "rb") as f:
            data = f.read()
        pairs = ((line, parse_json_line(data[off : off + size])) for line, off, size in rows)
    for line, obj in pairs:
        checked = build_checked(obj, unannotated=unannotated)
        record = training_dict(checked, source=source, line=line, threshold=threshold, soft=soft)
        out.append(dumps_line(record))
    return b"".join(out)


def _kept_job(job: tuple[str, list[tuple[int, int, int]], str, float, bool, str]) -> bytes:
    path, rows, source, threshold, soft, unannotated = job
    return kept_lines(path, rows, source=source, threshold=threshold, soft=soft, unannotated=unannotated)


def write_kept(
    out_path: str | os.PathLike,
    jobs: list[tuple[str, list[tuple[int, int, int]], str]],
    *,
    threshold: float = 0.0,
    soft: bool = False,
    unannotated: str = "negative",
    workers: int = 1,
    progress: Any = None,
) -> None:
    """Pass 2 over ``(path, rows, source)`` jobs, written in job order to ``out_path``."""
    full = [(p, rows, s, threshold, soft, unannotated) for p, rows, s in jobs if rows]
    pool = _pool(workers, len(full))
    try:
        with open(out_path, "wb") as f:
            for chunk in (pool.map(_kept_job, full) if pool else map(_kept_job, full)):
                f.write(chunk)
                if progress is not None:
                    progress.update(1)
    finally:
        if pool:
            pool.shutdown()


def dumps_line(obj: Any) -> bytes:
    """One JSON line; orjson, or the standard library for what orjson refuses (lone surrogates)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        import json

        return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
