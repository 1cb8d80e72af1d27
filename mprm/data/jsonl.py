"""Reading jsonl: the one line reader of every jsonl file mprm reads, and pass 1 of selection.

* :func:`iter_lines` gives the non-empty lines of any jsonl file (the benchmark, training and TRL
  readers, the eval items) with 1-based numbers and byte offsets. It is the same chunked reader
  (:func:`_chunks`, :func:`_pieces`) that pass 1 uses, so every reader numbers lines alike.
* :func:`corpus_files` turns a corpus path into ``(file, source)`` pairs (METHOD.md 9).
* :func:`scan_file` is pass 1 of selection over one corpus file: it reads every line once and
  keeps, per valid rollout, only what ranking and reports need (line, byte offset and size, scored
  steps n, positive steps, the exact sum of MC scores, steps labelled 0 under tau, unannotated
  steps; the id when the line has one); rejected lines keep their reason. Pass 2
  (``mprm.data.outputs``) re-reads the chosen lines by offset.

One validation rule. A chunk of ~2 MB of whole lines is decoded with one typed msgspec call; the
schema checks JSON syntax, types, score in [0, 1], counts >= 0 and non-empty steps in C, and the
rest (blank texts and images, the question, counts correct <= total) is checked over the chunk in
bulk. Any line the fast checks do not accept with certainty goes to the precise validator,
``mprm.data.validation.check_rollout``, which decides and names the problem; both paths compute
the numbers with :func:`rollout_numbers`, labels through ``mprm.data.labels.mc_targets``
(tests/data: the same lines and numbers in 64-byte, 700-byte and 2 MB chunks). No numpy here:
workers that run pass 1 need not import it (docs/selection.md, "How it is fast").
"""

from __future__ import annotations

import math
import mmap
import os
from array import array
from dataclasses import dataclass, field
from itertools import accumulate, chain, compress
from operator import attrgetter, gt
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional, Sequence, Union

import msgspec
import orjson

from mprm.data.labels import mc_targets
from mprm.data.validation import (
    DataError,
    InputPathError,
    RecordError,
    check_rollout,
    parse_json_line,
    record_id,
)

_UTF8_BOM = b"\xef\xbb\xbf"
#: Bytes per decode batch in pass 1 (rounded up to a whole line).
CHUNK_BYTES = 1 << 21
CORPUS_SUFFIXES = (".jsonl", ".parquet")
#: What msgspec checks while decoding; a line that fails any of it goes to the precise path.
_Count = Optional[Annotated[int, msgspec.Meta(ge=0, le=2**62)]]
_Score = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
_Text = Annotated[str, msgspec.Meta(min_length=1)]


class _Step(msgspec.Struct, gc=False):
    step: _Text
    score: _Score
    num_mc_correct: _Count = None
    num_mc_total: _Count = None


class _Line(msgspec.Struct, gc=False):
    image: Union[str, list[str]]
    steps_with_score: Annotated[list[_Step], msgspec.Meta(min_length=1)]
    question_orig: Any = None
    question: Any = None
    id: Any = None


_DECODER = msgspec.json.Decoder(_Line)
_STEPS, _IMAGE, _ORIG, _QUESTION, _ID = (attrgetter(a) for a in ("steps_with_score", "image", "question_orig", "question", "id"))
_TEXT, _SCORE, _CORRECT, _TOTAL = (attrgetter(a) for a in ("step", "score", "num_mc_correct", "num_mc_total"))
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)


# ---- lines ----------------------------------------------------------------------------------------
def _chunks(path: str | os.PathLike) -> Iterator[tuple[bytes, int, int]]:
    """``(chunk, byte offset, number of its first line)`` over a file in ~:data:`CHUNK_BYTES` runs
    of whole lines (memory-mapped; a leading UTF-8 byte-order mark is skipped)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if not size:
            return
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        pos = 3 if data[:3] == _UTF8_BOM else 0
        line = 1
        while pos < size:
            end = data.find(b"\n", pos + CHUNK_BYTES)
            end = size if end < 0 else end + 1
            chunk = data[pos:end]
            yield chunk, pos, line
            line += chunk.count(b"\n")
            pos = end
    finally:
        data.close()


def _pieces(chunk: bytes) -> tuple[list[bytes], list[int]]:
    """The lines of a chunk (newline excluded, a last empty piece dropped) and their start offsets."""
    pieces = chunk.split(b"\n")
    if not pieces[-1]:
        pieces.pop()
    return pieces, list(accumulate((len(p) + 1 for p in pieces), initial=0))


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, raw bytes)`` of every non-empty line (1-based numbers; empty
    and whitespace-only lines are skipped but counted). The raw bytes exclude the newline."""
    for chunk, base, first in _chunks(path):
        pieces, starts = _pieces(chunk)
        for k, raw in enumerate(pieces):
            if raw and not raw.isspace():
                yield first + k, base + starts[k], raw


def _plain(chunk: bytes, lines: int) -> bool:
    """True when every line of the chunk is ``{...}`` (optionally CR-ended) and the chunk is valid
    UTF-8. Then no JSON value can span two lines (a line ending inside a value would have to be
    followed by ``,``, ``}`` or ``]``), so a chunk that decodes into as many values as lines holds
    exactly one value per line."""
    if not chunk.startswith(b"{") or chunk.count(b"\n{") != lines - 1:
        return False
    closed = chunk.count(b"}\n") + chunk.count(b"}\r\n")
    if not chunk.endswith(b"\n"):
        closed += chunk.endswith((b"}", b"}\r"))
    if closed != lines:
        return False
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


# ---- corpus files -----------------------------------------------------------------------------------
def corpus_files(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[tuple[Path, str]]:
    """``(file, source)`` pairs of one or more corpus paths, files in sorted name order (METHOD.md 9).

    A directory means its ``*.jsonl`` / ``*.parquet`` files (or those of its ``annotations``
    sub-directory, the ``mprm synth`` layout); a file means itself. The source is the file stem,
    so two files of one stem are refused.
    """
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not paths:
        raise InputPathError("no corpus path given: pass an annotations directory, a .jsonl or a .parquet file")
    files = sorted((pair for p in paths for pair in _files_of(Path(p))), key=lambda pair: pair[0].name)
    stems = [source for _, source in files]
    twice = sorted({s for s in stems if stems.count(s) > 1})
    if twice:
        raise InputPathError(f"{', '.join(map(str, paths))}: two input files share a source name (the file stem): "
                             f"{twice}; rename one of them")
    return files


def _files_of(path: Path) -> list[tuple[Path, str]]:
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and p.suffix in CORPUS_SUFFIXES]
        if not files and (path / "annotations").is_dir():
            return _files_of(path / "annotations")
        if not files:
            raise InputPathError(f"{path}: no .jsonl or .parquet files in this directory")
        return [(p, p.stem) for p in files]
    if not path.exists():
        raise InputPathError(f"{path}: no such file or directory")
    if path.suffix not in CORPUS_SUFFIXES:
        raise InputPathError(f"{path}: expected a directory, a .jsonl or a .parquet file")
    return [(path, path.stem)]


# ---- pass 1 -------------------------------------------------------------------------------------------
def rollout_numbers(scores: list[float], threshold: float) -> tuple[int, int, float, int]:
    """(n scored steps, n_pos with s_j > 0, sum of s_j, steps labelled 0 under tau) of one rollout.

    Scores lie in [0, 1], so s_j > 0 is s_j != 0 and the sum of all scores is the sum over the
    positives (METHOD.md 3); ``math.fsum`` makes it exact then rounded once. The label count uses
    the one labelling rule (METHOD.md 2) so the report's error steps are the written labels' zeros.
    """
    n = len(scores)
    return n, n - scores.count(0.0), math.fsum(scores), mc_targets(scores, threshold=threshold).count(0.0)


@dataclass
class FileScan:
    """Pass-1 result for one file, as columns over its valid rollouts (file order).

    ``line``, ``offset``, ``size`` locate the line (for parquet: the 1-based row, the 0-based
    row, 1); ``n_steps`` (scored steps n), ``n_pos`` (s_j > 0), ``sum_mc`` (exact-then-rounded
    sum of s_j), ``n_err`` (labelled 0 under tau) and ``n_unannotated`` (num_mc_total == 0) are
    what selection and reports need, as ``array`` columns (int64, sum float64) that cross process
    boundaries as raw bytes. ``ids`` holds each row's own id, or None where the line has none (its
    id is then ``source:line``); ``ids`` is None when no line has one. ``rejected`` holds
    (line, id, reason, reason code); ``error`` the first bad line in strict mode.
    """

    path: str
    file: str
    source: str
    line: array = field(default_factory=lambda: array("q"))
    offset: array = field(default_factory=lambda: array("q"))
    size: array = field(default_factory=lambda: array("q"))
    n_steps: array = field(default_factory=lambda: array("q"))
    n_pos: array = field(default_factory=lambda: array("q"))
    sum_mc: array = field(default_factory=lambda: array("d"))
    n_err: array = field(default_factory=lambda: array("q"))
    n_unannotated: array = field(default_factory=lambda: array("q"))
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


_COLUMNS = ("line", "offset", "size", "n_steps", "n_pos", "sum_mc", "n_err", "n_unannotated")


class _Stop(Exception):
    """Strict mode met a bad line; the scan's ``error`` says which."""


class _Scanner:
    """Pass 1 over one file's lines; collects one row tuple per valid rollout."""

    def __init__(self, path: Path, source: str, lenient: bool, unannotated: str, threshold: float) -> None:
        self.scan = FileScan(path=str(path), file=path.name, source=source)
        self.lenient, self.truncate, self.threshold = lenient, unannotated == "truncate", threshold
        self.unannotated = unannotated
        self.rows: list[tuple[int, int, int, int, int, float, int, int]] = []
        self.ids: list[Any] = []

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
        return (checked.id, *rollout_numbers(checked.scores, self.threshold), checked.n_unannotated)

    def chunk(self, chunk: bytes, base: int, first: int) -> None:
        """Scan one chunk of whole lines starting at byte ``base`` and line ``first``."""
        pieces, starts = _pieces(chunk)
        recs = None
        if _plain(chunk, len(pieces)):
            try:
                recs = _DECODER.decode_lines(chunk)
            except _DECODE_ERRORS:
                recs = None
            if recs is not None and len(recs) != len(pieces):
                recs = None
        if recs is not None:
            numbers = range(first, first + len(pieces))
        else:
            keep = [bool(raw) and not raw.isspace() for raw in pieces]
            numbers = list(compress(range(first, first + len(pieces)), keep))
            starts, pieces = list(compress(starts, keep)), list(compress(pieces, keep))
            recs = [_decode_one(raw) for raw in pieces]
        self.scan.n_lines += len(pieces)
        fast = _fast(recs, self.truncate, self.threshold) if None not in recs else _fast_some(recs, self.truncate, self.threshold)
        rows, ids = self.rows, self.ids
        for line, start, raw, result in zip(numbers, starts, pieces, fast):
            if result is None:
                result = self.precise(line, raw)
                if result is None:
                    continue
            rows.append((line, base + start, len(raw), *result[1:]))
            ids.append(result[0])

    def objects(self, items: Iterator[tuple[int, Any]]) -> None:
        """Already-parsed rows (parquet): the precise path for each; offset = row index."""
        for line, obj in items:
            self.scan.n_lines += 1
            result = self.precise(line, obj)
            if result is not None:
                self.rows.append((line, line - 1, 1, *result[1:]))
                self.ids.append(result[0])

    def finish(self) -> FileScan:
        scan = self.scan
        if self.rows:
            for name, values in zip(_COLUMNS, zip(*self.rows)):
                setattr(scan, name, array("d" if name == "sum_mc" else "q", values))
            scan.ids = self.ids if self.ids.count(None) != len(self.ids) else None
        return scan


def _decode_one(raw: bytes) -> _Line | None:
    try:
        if not raw.isascii():
            raw.decode("utf-8")
        return _DECODER.decode(raw)
    except _DECODE_ERRORS:
        return None


def _blank(text: Any) -> bool:
    """Not a string with a non-whitespace character (validation's rule: ``text.strip()`` empty)."""
    return type(text) is not str or not text.strip()


def _texts_ok(texts: list[Any]) -> bool:
    """Every item is a non-blank string: one bulk test over the whole chunk."""
    return set(map(type, texts)) == {str} and all(texts) and not any(map(str.isspace, texts))


def _line_ok(rec: _Line) -> bool:
    """The checks the schema cannot make, for one decoded line: non-blank step texts and image
    paths, ``num_mc_correct <= num_mc_total``, a usable question (METHOD.md 9)."""
    steps = rec.steps_with_score
    if any(map(str.isspace, map(_TEXT, steps))):
        return False
    for step in steps:
        if step.num_mc_correct is not None and step.num_mc_total is not None and step.num_mc_correct > step.num_mc_total:
            return False
    image = rec.image
    if (_blank(image) if type(image) is str else not image or any(map(_blank, image))):
        return False
    return not _blank(rec.question_orig) or type(rec.question) is str


def _chunk_ok(recs: list[_Line]) -> bool:
    """The same checks as :func:`_line_ok` for a whole chunk at once (the common case: all pass)."""
    flat = list(chain.from_iterable(map(_STEPS, recs)))
    if any(map(str.isspace, map(_TEXT, flat))):
        return False
    try:
        if any(map(gt, map(_CORRECT, flat), map(_TOTAL, flat))):
            return False
    except TypeError:  # a null count: decided line by line
        return False
    return _texts_ok(list(map(_IMAGE, recs))) and _texts_ok(list(map(_ORIG, recs)))


def _fast(recs: list[_Line], truncate: bool, threshold: float) -> list[tuple[Any, ...] | None]:
    """(id, n, n_pos, sum, n_err, unannotated) per decoded line, None where the precise path must
    decide (a check failed, an id beyond 64 bits, nothing annotated left under truncation)."""
    ok = [True] * len(recs) if _chunk_ok(recs) else list(map(_line_ok, recs))
    out: list[tuple[Any, ...] | None] = []
    for rec, good in zip(recs, ok):
        rid = rec.id
        if rid is not None and type(rid) is not str:
            if type(rid) is int and not -(2**63) <= rid < 2**64:
                good = False  # orjson, and so the precise path, reads it as a float
            rid = str(rid)
        if not good:
            out.append(None)
            continue
        steps = rec.steps_with_score
        scores = list(map(_SCORE, steps))
        totals = list(map(_TOTAL, steps))
        unannotated = totals.count(0)
        if unannotated and truncate:
            cut = totals.index(0)
            if not cut:
                out.append(None)
                continue
            scores = scores[:cut]
        out.append((rid, *rollout_numbers(scores, threshold), unannotated))
    return out


def _fast_some(recs: list[_Line | None], truncate: bool, threshold: float) -> list[tuple[Any, ...] | None]:
    """:func:`_fast` over the lines that decoded; None for the others."""
    decoded = [r for r in recs if r is not None]
    results = iter(_fast(decoded, truncate, threshold)) if decoded else iter(())
    return [None if r is None else next(results) for r in recs]


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
            scanner.objects(parquet_rows(path))
        else:
            for chunk, base, first in _chunks(path):
                scanner.chunk(chunk, base, first)
    except _Stop:
        pass
    return scanner.finish()


def parquet_rows(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """``(1-based row, row as a dict)`` of a parquet file, batch by batch."""
    import pyarrow.parquet as pq

    row = 0
    for batch in pq.ParquetFile(path).iter_batches():
        for obj in batch.to_pylist():
            row += 1
            yield row, obj


def dumps_line(obj: Any) -> bytes:
    """One JSON line; orjson, or the standard library for what orjson refuses (lone surrogates)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        import json

        return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
