"""Fast two-pass access to corpus files, for selection at VisualPRM400K scale (565K rollouts).

Pass 1 (:func:`scan_file`) reads every line once and keeps, per valid rollout, only what ranking
and reports need, as numpy columns: line, byte offset and size, five numbers (scored steps,
positive steps, sum of MC scores, steps labelled 0 under tau, unannotated steps) and the id when
the line has one; rejected lines keep their reason. Pass 2 (``mprm.data.outputs``) re-reads only
the chosen lines and writes them in the training format, with the manifest.

Pass 1 memory-maps a file and decodes it in chunks of whole lines with one typed msgspec call
per chunk (``decode_lines``). The schema declares only the fields that matter (all others are
skipped in C); JSON syntax and types are checked by the decoder, the value rules (score range,
counts, non-blank texts and image, question) and the numbers in bulk with numpy. A chunk that is
not plainly one object per line, or that fails to decode, is decoded line by line, and any line
the fast checks are not certain about goes through the precise validator of
``mprm.data.validation``, which decides and names the problem, so both paths accept exactly the
same lines with the same numbers (tests/data/test_readers.py, tests/data/test_select_cli.py).
"""

from __future__ import annotations

import math
import mmap
import os
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional, Union

import msgspec
import numpy as np
import orjson

from mprm.data.validation import (
    DataError,
    RecordError,
    check_rollout,
    parse_json_line,
    record_id,
)

_UTF8_BOM = b"\xef\xbb\xbf"
#: Bytes per decode batch in pass 1 (rounded up to a whole line).
CHUNK_BYTES = 1 << 21
#: A count the fast path can hold in int64; anything else (negative, huge, a float) fails the
#: decode and the line goes to the precise path.
_Count = Optional[Annotated[int, msgspec.Meta(ge=0, le=2**62)]]


class _Step(msgspec.Struct, gc=False):
    step: str
    score: float
    num_mc_correct: _Count = None
    num_mc_total: _Count = None


class _Line(msgspec.Struct, gc=False):
    image: Union[str, list[str]]
    steps_with_score: list[_Step]
    question_orig: Any = None
    question: Any = None
    id: Any = None


_DECODER = msgspec.json.Decoder(_Line)
_STEPS, _IMAGE, _ORIG, _QUESTION, _ID = (attrgetter(a) for a in ("steps_with_score", "image", "question_orig", "question", "id"))
_TEXT, _SCORE, _CORRECT, _TOTAL = (attrgetter(a) for a in ("step", "score", "num_mc_correct", "num_mc_total"))
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


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


_INT_COLUMNS = ("line", "offset", "size", "n_steps", "n_pos", "n_err", "n_unannotated")


def _empty(dtype: Any = np.int64) -> np.ndarray:
    return np.zeros(0, dtype)


@dataclass
class FileScan:
    """Pass-1 result for one file, as columns over its valid rollouts (file order).

    ``line``, ``offset``, ``size`` locate the line; ``n_steps`` (scored steps n), ``n_pos``
    (s_j > 0), ``sum_mc`` (exact-then-rounded sum of s_j), ``n_err`` (labelled 0 under tau) and
    ``n_unannotated`` (num_mc_total == 0) are what selection and reports need. ``ids`` holds
    each row's own id, or None where the line has none (its id is then ``source:line``);
    ``ids`` is None when no line has one. ``rejected`` holds (line, id, reason, reason code).
    """

    path: str
    file: str
    source: str
    line: np.ndarray = field(default_factory=_empty)
    offset: np.ndarray = field(default_factory=_empty)
    size: np.ndarray = field(default_factory=_empty)
    n_steps: np.ndarray = field(default_factory=_empty)
    n_pos: np.ndarray = field(default_factory=_empty)
    sum_mc: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    n_err: np.ndarray = field(default_factory=_empty)
    n_unannotated: np.ndarray = field(default_factory=_empty)
    ids: list[str | None] | None = None
    rejected: list[tuple[int, str, str, str]] = field(default_factory=list)
    error: DataError | None = None
    n_lines: int = 0

    def __len__(self) -> int:
        return len(self.line)

    def id_list(self) -> list[str]:
        """Every valid row's id, ``source:line`` where the line has none."""
        own = self.ids or [None] * len(self)
        return [f"{self.source}:{n}" if i is None else i for n, i in zip(self.line.tolist(), own)]

    @property
    def rows(self) -> list[tuple[int, int, int, str, int, int, float, int, int]]:
        """Row tuples (line, offset, size, id, n, n_pos, sum, n_err, unannotated), for inspection."""
        cols = [self.line, self.offset, self.size, self.n_steps, self.n_pos, self.sum_mc, self.n_err, self.n_unannotated]
        values = [c.tolist() for c in cols]
        return list(zip(*values[:3], self.id_list(), *values[3:]))


class _Stop(Exception):
    """Strict mode met a bad line; the scan's ``error`` says which."""


class _Scanner:
    """Pass 1 over one file's lines; collects column parts chunk by chunk."""

    def __init__(self, path: Path, source: str, lenient: bool, unannotated: str, threshold: float) -> None:
        self.scan = FileScan(path=str(path), file=path.name, source=source)
        self.lenient, self.unannotated, self.threshold = lenient, unannotated, threshold
        self.parts: list[tuple[dict[str, np.ndarray], list[Any]]] = []

    # -- the precise path -------------------------------------------------------------------
    def precise(self, line: int, item: Any) -> tuple[Any, ...] | None:
        """(id, n, n_pos, sum, n_err, unannotated) of a valid line, None for a rejected one."""
        obj = None
        try:
            obj = parse_json_line(item) if isinstance(item, bytes) else item
            checked = check_rollout(obj, unannotated=self.unannotated)
        except RecordError as err:
            if not self.lenient:
                self.scan.error = DataError(self.scan.path, line, err.reason)
                raise _Stop from None
            self.scan.rejected.append((line, record_id(obj, self.scan.source, line), err.reason, err.code))
            return None
        return (checked.id, *_numbers(checked.scores, self.threshold), checked.n_unannotated)

    # -- chunks -----------------------------------------------------------------------------
    def chunk(self, chunk: memoryview, base: int, first_line: int) -> int:
        """Scan one chunk of whole lines starting at byte ``base``; returns the next line number."""
        geometry = _plain_lines(chunk)
        recs = None
        if geometry is not None:
            try:
                recs = _DECODER.decode_lines(chunk)
            except _DECODE_ERRORS:
                recs = None
            if recs is not None and len(recs) != len(geometry[0]):
                recs = None
        if recs is not None:
            starts, sizes = geometry
            lines = np.arange(first_line, first_line + len(starts), dtype=np.int64)
            self.consume(chunk, base, lines, starts, sizes, recs)
            return first_line + len(starts)
        pieces = bytes(chunk).split(b"\n")
        if not pieces[-1]:
            pieces.pop()
        lines, starts, sizes, recs = [], [], [], []
        at = 0
        for k, raw in enumerate(pieces):
            if raw and not raw.isspace():
                lines.append(first_line + k)
                starts.append(at)
                sizes.append(len(raw))
                recs.append(_decode_one(raw))
            at += len(raw) + 1
        if lines:
            self.consume(chunk, base, np.asarray(lines, np.int64), np.asarray(starts, np.int64), np.asarray(sizes, np.int64), recs)
        return first_line + len(pieces)

    def consume(self, chunk: memoryview, base: int, lines: np.ndarray, starts: np.ndarray, sizes: np.ndarray, recs: list[Any]) -> None:
        """Fast numbers for decoded lines, the precise path for the rest, in line order."""
        count = len(lines)
        self.scan.n_lines += count
        decoded = np.fromiter((r is not None for r in recs), bool, count) if None in recs else np.ones(count, bool)
        where = np.flatnonzero(decoded)
        cols = {name: np.zeros(count, np.int64) for name in ("n_steps", "n_pos", "n_err", "n_unannotated")}
        cols["sum_mc"] = np.zeros(count, np.float64)
        ids: list[Any] = [None] * count
        valid = np.zeros(count, bool)
        if len(where):
            sub = recs if len(where) == count else [recs[j] for j in where.tolist()]
            ok, numbers, sub_ids = _fast_numbers(sub, self.unannotated, self.threshold)
            for name, values in numbers.items():
                cols[name][where] = values
            valid[where] = ok
            if sub_ids.count(None) != len(sub_ids):
                for j, i in zip(where.tolist(), sub_ids):
                    if type(i) is int and not -(2**63) <= i < 2**64:
                        valid[j] = False  # orjson, and so the precise path, reads it as a float
                    ids[j] = i if i is None or type(i) is str else str(i)
        for j in np.flatnonzero(~valid).tolist():
            at = int(starts[j])
            result = self.precise(int(lines[j]), bytes(chunk[at : at + int(sizes[j])]))
            if result is not None:
                valid[j] = True
                ids[j] = result[0]
                for name, value in zip(("n_steps", "n_pos", "sum_mc", "n_err", "n_unannotated"), result[1:]):
                    cols[name][j] = value
        keep = np.flatnonzero(valid)
        cols = {name: values[keep] for name, values in cols.items()}
        cols.update(line=lines[keep], offset=starts[keep] + base, size=sizes[keep])
        self.parts.append((cols, [ids[j] for j in keep.tolist()]))

    def objects(self, items: Iterator[tuple[int, Any]]) -> None:
        """Already-parsed rows (parquet): the precise path for each; offset = row index."""
        rows, ids = [], []
        for line, obj in items:
            self.scan.n_lines += 1
            result = self.precise(line, obj)
            if result is not None:
                rows.append((line, line - 1, 1, *result[1:]))
                ids.append(result[0])
        if rows:
            columns = list(zip(*rows))
            names = ("line", "offset", "size", "n_steps", "n_pos", "sum_mc", "n_err", "n_unannotated")
            cols = {name: np.asarray(values, np.float64 if name == "sum_mc" else np.int64) for name, values in zip(names, columns)}
            self.parts.append((cols, ids))

    def finish(self) -> FileScan:
        scan = self.scan
        if self.parts:
            for name in _INT_COLUMNS:
                setattr(scan, name, np.concatenate([p[name] for p, _ in self.parts]).astype(np.int64))
            scan.sum_mc = np.concatenate([p["sum_mc"] for p, _ in self.parts]).astype(np.float64)
            ids = [i for _, part in self.parts for i in part]
            scan.ids = ids if ids.count(None) != len(ids) else None
        return scan


def _decode_one(raw: bytes) -> _Line | None:
    try:
        if not raw.isascii():
            raw.decode("utf-8")
        return _DECODER.decode(raw)
    except _DECODE_ERRORS:
        return None


def _plain_lines(chunk: memoryview) -> tuple[np.ndarray, np.ndarray] | None:
    """(starts, sizes) when every line of the chunk is ``{...}`` (optionally CR-ended) and
    the chunk is valid UTF-8, else None. Then no JSON value can span two lines (a line that ends
    inside a value would have to be followed by ``,``, ``}`` or ``]``), so a chunk that decodes
    into as many values as lines holds exactly one value per line."""
    arr = np.frombuffer(chunk, np.uint8)
    if not len(arr):
        return None
    ends = np.flatnonzero(arr == 10)
    if arr[-1] != 10:
        ends = np.append(ends, len(arr))
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    sizes = ends - starts
    if sizes.min() < 2 or not (arr[starts] == 0x7B).all():
        return None
    last = ends - 1
    last -= arr[last] == 13
    if not (arr[last] == 0x7D).all() or not (last > starts).all():
        return None
    if arr.max() >= 0x80:
        try:
            str(chunk, "utf-8")
        except UnicodeDecodeError:
            return None
    return starts, sizes


def _nonblank(texts: list[Any], typed: bool = False) -> np.ndarray:
    """True where a value is a string with a non-whitespace character (``validation``'s rule:
    ``text.strip()`` is not empty); ``typed`` says all are strings already. One bulk test, item
    by item only when it fails."""
    if (typed or set(map(type, texts)) == {str}) and all(texts) and not any(map(str.isspace, texts)):
        return np.ones(len(texts), bool)
    return np.fromiter((type(t) is str and bool(t.strip()) for t in texts), bool, len(texts))


def _images_ok(images: list[Any]) -> np.ndarray:
    """image is a non-blank path or a non-empty list of non-blank paths (METHOD.md 9)."""
    if set(map(type, images)) == {str}:
        return _nonblank(images, typed=True)
    return np.fromiter(
        (bool(i.strip()) if type(i) is str else bool(i) and all(map(str.strip, i)) for i in images), bool, len(images)
    )


def _questions_ok(recs: list[_Line]) -> np.ndarray:
    """``question_orig`` is a non-blank string, or else ``question`` is a string."""
    ok = _nonblank(list(map(_ORIG, recs)))
    for i in np.flatnonzero(~ok).tolist():
        ok[i] = type(recs[i].question) is str
    return ok


def _counts(steps: list[_Step], get: attrgetter) -> np.ndarray:
    """A count per step, -1 where it is missing or null."""
    try:
        return np.fromiter(map(get, steps), np.int64, len(steps))
    except TypeError:
        return np.fromiter((-1 if v is None else v for v in map(get, steps)), np.int64, len(steps))


def _fast_numbers(
    recs: list[_Line], unannotated: str, threshold: float
) -> tuple[np.ndarray, dict[str, np.ndarray], list[Any]]:
    """(certainly valid, numbers per rollout, own ids) for decoded lines, vectorised.

    The numbers are those of :func:`_numbers` on the (possibly truncated) scores; the sum is
    taken in float when every score is a multiple of 2^-30 (then every partial sum is exact,
    equal to ``math.fsum``), else with ``math.fsum``.
    """
    count = len(recs)
    steps = list(map(_STEPS, recs))
    lens = np.fromiter(map(len, steps), np.int64, count)
    ok = (lens > 0) & _images_ok(list(map(_IMAGE, recs))) & _questions_ok(recs)
    ids = list(map(_ID, recs))
    if not (lens > 0).all():
        lens = np.maximum(lens, 1)
        steps = [s if s else [_Step("", 0.0)] for s in steps]
    flat = list(chain.from_iterable(steps))
    total_steps = len(flat)
    owner = np.repeat(np.arange(count), lens)
    starts = np.cumsum(lens) - lens
    scores = np.fromiter(map(_SCORE, flat), np.float64, total_steps)
    correct = _counts(flat, _CORRECT)
    total = _counts(flat, _TOTAL)
    bad = ~((scores >= 0.0) & (scores <= 1.0)) | ((correct > total) & (correct >= 0) & (total >= 0))
    bad |= ~_nonblank(list(map(_TEXT, flat)), typed=True)
    ok[owner[bad]] = False
    zero = total == 0
    n_unannotated = np.add.reduceat(zero, starts, dtype=np.int64)
    keep = None
    if unannotated == "truncate" and zero.any():
        seen = np.cumsum(zero)
        before = seen[starts] - zero[starts]
        keep = (seen - np.repeat(before, lens)) == 0
        ok[zero[starts]] = False  # nothing annotated left: the precise path rejects it
    positive = scores > 0.0
    if keep is None:
        n = lens
        n_pos = np.add.reduceat(positive, starts, dtype=np.int64)
        n_err = n - n_pos if threshold == 0.0 else np.add.reduceat(scores <= threshold, starts, dtype=np.int64)
        kept_scores = scores
    else:
        n = np.add.reduceat(keep, starts, dtype=np.int64)
        n_pos = np.add.reduceat(positive & keep, starts, dtype=np.int64)
        n_err = np.add.reduceat((scores <= threshold) & keep, starts, dtype=np.int64)
        kept_scores = np.where(keep, scores, 0.0)
    scaled = kept_scores * 2.0**30
    if lens.max(initial=0) < 2**21 and np.array_equal(scaled, np.floor(scaled)):
        sums = np.add.reduceat(kept_scores, starts)
    else:
        values = kept_scores.tolist()
        sums = np.fromiter((math.fsum(values[a : a + m]) for a, m in zip(starts.tolist(), lens.tolist())), np.float64, count)
    numbers = {"n_steps": n, "n_pos": n_pos, "sum_mc": sums, "n_err": n_err, "n_unannotated": n_unannotated}
    return ok, numbers, ids


def scan_file(
    path: str | os.PathLike,
    *,
    source: str,
    lenient: bool = False,
    unannotated: str = "negative",
    threshold: float = 0.0,
) -> FileScan:
    """Pass 1 over one .jsonl or .parquet file. Strict mode stops at the first bad line and sets
    ``error``; lenient mode lists bad lines in ``rejected``."""
    path = Path(path)
    scanner = _Scanner(path, source, lenient, unannotated, threshold)
    try:
        if path.suffix == ".parquet":
            scanner.objects(_parquet_rows(path))
        else:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
            view = memoryview(data)
            pos = 3 if data[:3] == _UTF8_BOM else 0
            line = 1
            while pos < size:
                end = data.find(b"\n", pos + CHUNK_BYTES)
                end = size if end < 0 else end + 1
                line = scanner.chunk(view[pos:end], pos, line)
                pos = end
    except _Stop:
        pass
    return scanner.finish()


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches():
        for obj in batch.to_pylist():
            row += 1
            yield row, obj


def _scan_job(job: tuple[str, str, bool, str, float]) -> FileScan:
    path, source, lenient, unannotated, threshold = job
    return scan_file(path, source=source, lenient=lenient, unannotated=unannotated, threshold=threshold)


def make_pool(workers: int, jobs: int) -> Any:
    """A fork-based process pool of min(workers, jobs) processes, or None for one process.

    Create it before any thread is started (fork copies one thread only).
    """
    if workers <= 1 or jobs <= 1:
        return None
    import multiprocessing

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method).Pool(min(workers, jobs))


def scan_corpus(
    files: list[tuple[Path, str]],
    *,
    lenient: bool = False,
    unannotated: str = "negative",
    threshold: float = 0.0,
    pool: Any = None,
    progress: Any = None,
) -> list[FileScan]:
    """Pass 1 over ``(path, source)`` pairs, in that order, in ``pool`` (from :func:`make_pool`)
    when given; ``progress`` is a tqdm bar or None. Strict mode stops after the first file with
    an error."""
    jobs = [(str(p), s, lenient, unannotated, threshold) for p, s in files]
    results: list[FileScan] = []
    for scan in pool.imap(_scan_job, jobs) if pool else map(_scan_job, jobs):
        results.append(scan)
        if progress is not None:
            progress.update(1)
        if scan.error is not None:
            break
    return results


def dumps_line(obj: Any) -> bytes:
    """One JSON line; orjson, or the standard library for what orjson refuses (lone surrogates)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        import json

        return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
