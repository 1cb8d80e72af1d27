"""Reading jsonl: the one line reader of every jsonl file mprm reads, and pass 1 of selection.

* :func:`iter_lines` gives the non-empty lines of any jsonl file (the benchmark, training and TRL
  readers, the eval items) with 1-based numbers and byte offsets. It is the same chunked reader
  (:func:`_chunks`, :func:`_spans`) that pass 1 uses, so every reader numbers lines alike.
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
the numbers with :func:`score_numbers`, labels through ``mprm.data.labels.mc_targets``
(tests/data: the same lines and numbers in 64-byte, 700-byte and 2 MB chunks). No numpy here:
workers that run pass 1 need not import it (docs/selection.md, "How it is fast").
"""

from __future__ import annotations

import math
import mmap
import os
from array import array
from dataclasses import dataclass, field
from itertools import accumulate, chain, compress, repeat
from operator import add, attrgetter, getitem, gt, sub
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional, Sequence, Union

import msgspec
import orjson

from mprm.data.labels import mc_target
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
def _chunks(path: str | os.PathLike) -> Iterator[tuple[bytes, list[int], list[int], int, int]]:
    """``(chunk, line starts, line ends, byte offset, number of the first line)`` over a file in
    ~:data:`CHUNK_BYTES` runs of whole lines (memory-mapped; a leading UTF-8 byte-order mark is
    skipped; line numbers count every line, empty ones included; ends exclude the newline)."""
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
            starts, ends = _spans(chunk)
            yield chunk, starts, ends, pos, line
            line += len(ends)
            pos = end
    finally:
        data.close()


def _spans(chunk: bytes) -> tuple[list[int], list[int]]:
    """Start and end (newline excluded) of every line of a chunk; a final newline ends the last
    line rather than starting an empty one. One ``find`` per line: no copy of the lines."""
    ends = []
    find, append = chunk.find, ends.append
    at = find(b"\n")
    while at >= 0:
        append(at)
        at = find(b"\n", at + 1)
    if not chunk.endswith(b"\n"):
        append(len(chunk))
    return [0, *map(add, ends[:-1], repeat(1))], ends


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, raw bytes)`` of every non-empty line (1-based numbers; empty
    and whitespace-only lines are skipped but counted). The raw bytes exclude the newline."""
    for chunk, starts, ends, base, first in _chunks(path):
        for k, (a, b) in enumerate(zip(starts, ends)):
            raw = chunk[a:b]
            if raw and not raw.isspace():
                yield first + k, base + a, raw


def _plain(chunk: bytes, starts: list[int], ends: list[int]) -> bool:
    """True when every line of the chunk is ``{...}`` (optionally CR-ended) and the chunk is valid
    UTF-8. Then no JSON value can span two lines (a line ending inside a value would have to be
    followed by ``,``, ``}`` or ``]``), so a chunk that decodes into as many values as lines holds
    exactly one value per line."""
    if min(map(sub, ends, starts)) < 2 or set(map(chunk.__getitem__, starts)) != {0x7B}:
        return False
    last = set(map(chunk.__getitem__, map(sub, ends, repeat(1))))
    if last != {0x7D}:
        if last != {0x7D, 0x0D} and last != {0x0D}:
            return False
        if any(chunk[b - 1] == 0x0D and (b - a < 3 or chunk[b - 2] != 0x7D) for a, b in zip(starts, ends)):
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
def score_numbers(scores: list[float], starts: list[int], ends: list[int], threshold: float) -> tuple[list[Any], ...]:
    """Per rollout ``scores[a:b]`` (one slice per start and end): n scored steps, n_pos with
    s_j > 0, sum of s_j, and steps labelled 0 under tau, as four lists. Both paths of pass 1 use it.

    Scores lie in [0, 1], so s_j > 0 is s_j != 0 and the sum of all scores is the sum over the
    positives (METHOD.md 3); ``math.fsum`` makes it exact then rounded once. A step's label is the
    one labelling rule's (METHOD.md 2, ``mc_target``), applied once per distinct score, so the
    report's error steps are the written labels' zeros. No Python loop per rollout at tau = 0.
    """
    spans = list(map(slice, starts, ends))
    rollouts = list(map(getitem, repeat(scores), spans))
    n = list(map(len, rollouts))
    n_zero = list(map(list.count, rollouts, repeat(0.0)))
    n_pos = list(map(sub, n, n_zero))
    labelled_0 = [s for s in set(scores) if mc_target(s, threshold=threshold) == 0.0]
    if labelled_0 == [0.0]:
        n_err = n_zero
    elif not labelled_0:
        n_err = [0] * len(n)
    else:
        n_err = [sum(map(r.count, labelled_0)) for r in rollouts]
    return n, n_pos, list(map(math.fsum, rollouts)), n_err


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


class _Lines:
    """The raw bytes of line i of a chunk, sliced only when asked for (the precise path)."""

    def __init__(self, chunk: bytes, starts: list[int], ends: list[int]) -> None:
        self.chunk, self.starts, self.ends = chunk, starts, ends

    def __getitem__(self, i: int) -> bytes:
        return self.chunk[self.starts[i] : self.ends[i]]


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
        numbers = score_numbers(checked.scores, [0], [len(checked.scores)], self.threshold)
        return (checked.id, *(column[0] for column in numbers), checked.n_unannotated)

    def chunk(self, chunk: bytes, starts: list[int], ends: list[int], base: int, first: int) -> None:
        """Scan one chunk of whole lines (at ``starts``/``ends`` in ``chunk``) that starts at byte
        ``base`` and line ``first``."""
        recs = None
        if ends and _plain(chunk, starts, ends):
            try:
                recs = _DECODER.decode_lines(chunk)
            except _DECODE_ERRORS:
                recs = None
            if recs is not None and len(recs) != len(ends):
                recs = None
        if recs is not None:
            numbers = range(first, first + len(ends))
            pieces: Any = _Lines(chunk, starts, ends)
        else:
            pieces = [chunk[a:b] for a, b in zip(starts, ends)]
            keep = [bool(raw) and not raw.isspace() for raw in pieces]
            numbers = list(compress(range(first, first + len(pieces)), keep))
            starts, ends, pieces = list(compress(starts, keep)), list(compress(ends, keep)), list(compress(pieces, keep))
            recs = [_decode_one(raw) for raw in pieces]
        self.scan.n_lines += len(numbers)
        offsets = list(map(add, starts, repeat(base)))
        decoded = [i for i, rec in enumerate(recs) if rec is not None] if None in recs else None
        if decoded is None:
            ids, columns, bad = _columns(recs, self.truncate, self.threshold)
        else:  # lines decoded one by one, some not at all: columns of the decoded ones, the rest precise
            part_ids, part_columns, part_bad = _columns([recs[i] for i in decoded], self.truncate, self.threshold)
            ids, columns = [None] * len(recs), [[0] * len(recs) for _ in range(5)]
            bad = set(range(len(recs))) - set(decoded) | {decoded[j] for j in part_bad}
            for j, i in enumerate(decoded):
                ids[i] = part_ids[j]
                for column, part in zip(columns, part_columns):
                    column[i] = part[j]
        rows = zip(numbers, offsets, map(sub, ends, starts), *columns)
        if not bad:
            self.rows.extend(rows)
            self.ids.extend(ids)
            return
        for i, row in enumerate(rows):
            if i in bad:
                result = self.precise(row[0], pieces[i])
                if result is None:
                    continue
                row, ids[i] = (*row[:3], *result[1:]), result[0]
            self.rows.append(row)
            self.ids.append(ids[i])

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


def _chunk_ok(recs: list[_Line], flat: list[_Step], totals: list[int | None]) -> bool:
    """The same checks as :func:`_line_ok` for a whole chunk at once (the common case: all pass);
    ``flat`` are the chunk's steps, ``totals`` their ``num_mc_total``."""
    if any(map(str.isspace, map(_TEXT, flat))):
        return False
    try:
        if any(map(gt, map(_CORRECT, flat), totals)):
            return False
    except TypeError:  # a null count: decided line by line
        return False
    return _texts_ok(list(map(_IMAGE, recs))) and _texts_ok(list(map(_ORIG, recs)))


def _columns(recs: list[_Line], truncate: bool, threshold: float) -> tuple[list[Any], list[list[Any]], set[int]]:
    """Ids and the five numbers (n, n_pos, sum, n_err, unannotated) of decoded lines as columns,
    and the positions the precise path must decide instead (a check failed, an id beyond 64 bits,
    nothing annotated left under truncation)."""
    steps = list(map(_STEPS, recs))
    lens = list(map(len, steps))
    flat = list(chain.from_iterable(steps))
    totals = list(map(_TOTAL, flat))
    bad = set() if _chunk_ok(recs, flat, totals) else {i for i, rec in enumerate(recs) if not _line_ok(rec)}
    ids = list(map(_ID, recs))
    if ids.count(None) != len(ids):
        for i, rid in enumerate(ids):
            if rid is not None and type(rid) is not str:
                if type(rid) is int and not -(2**63) <= rid < 2**64:
                    bad.add(i)  # orjson, and so the precise path, reads it as a float
                ids[i] = str(rid)
    ends = list(accumulate(lens))
    starts = list(map(sub, ends, lens))
    if 0 in totals:
        unannotated = list(map(list.count, map(getitem, repeat(totals), map(slice, starts, ends)), repeat(0)))
        if truncate:
            for i in (i for i, u in enumerate(unannotated) if u):
                ends[i] = totals.index(0, starts[i], ends[i])
                if ends[i] == starts[i]:
                    bad.add(i)
    else:
        unannotated = [0] * len(recs)
    numbers = score_numbers(list(map(_SCORE, flat)), starts, ends, threshold)
    return ids, [*numbers, unannotated], bad


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
            for chunk, starts, ends, base, first in _chunks(path):
                scanner.chunk(chunk, starts, ends, base, first)
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
