"""Pass 1 of selection: every corpus line read once, for ranking and reports (METHOD.md 3, 9).

:func:`scan_file` keeps, per valid rollout, only what ranking and reports need, as numpy columns:
line, byte offset and size, scored steps n, positive steps, the exact sum of MC scores, steps
labelled 0 under tau, unannotated steps, and the id when the line has one; rejected lines keep
their reason. Pass 2 (``mprm.data.outputs``) re-reads the chosen lines by offset.

One reading path, one validation rule. Lines come from the line reader every jsonl reader uses
(``mprm.data.lines.chunks``). A ~2 MB chunk of whole lines that is plainly one object per line is
decoded with one typed msgspec call; the schema checks JSON syntax, types, score in [0, 1],
counts >= 0 and non-empty steps and texts in C, and the rest (blank texts and images, the
question, correct <= total) is checked over the chunk in bulk. Any line the fast checks do not
accept with certainty goes to the precise validator, ``mprm.data.validation.check_rollout``, which
decides and names the problem. Both paths get their numbers from :func:`score_numbers` (labels by
``mprm.data.labels.mc_target``), so they accept the same lines with the same numbers (tests/data:
64-byte, 700-byte and 2 MB chunks against the precise validator).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from itertools import chain, compress
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional, Union

import msgspec
import numpy as np

from mprm.data.labels import mc_target
from mprm.data.lines import chunks, parquet_rows
from mprm.data.validation import DataError, RecordError, check_rollout, parse_json_line, record_id

#: Bytes per decode batch in pass 1 (rounded up to a whole line).
CHUNK_BYTES = 1 << 21
#: What msgspec checks while decoding; a line that fails any of it goes to the precise path. A
#: count the fast path can hold in int64; anything else (negative, huge, a float) fails.
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
_STEPS, _IMAGE, _ORIG, _ID = (attrgetter(a) for a in ("steps_with_score", "image", "question_orig", "id"))
_TEXT, _SCORE, _CORRECT, _TOTAL = (attrgetter(a) for a in ("step", "score", "num_mc_correct", "num_mc_total"))
_DECODE_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)
_NUMBERS = ("n_steps", "n_pos", "sum_mc", "n_err", "n_unannotated")
_INT_COLUMNS = ("line", "offset", "size", "n_steps", "n_pos", "n_err", "n_unannotated")


def score_numbers(
    scores: np.ndarray, starts: np.ndarray, threshold: float, keep: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(n scored steps, n_pos with s_j > 0, sum of s_j, steps labelled 0 under tau) per rollout.

    ``scores`` are the step scores of consecutive rollouts, rollout i starting at ``starts[i]``
    (every rollout has a step); ``keep`` marks the steps that count (truncation), None for all.
    Scores lie in [0, 1], so s_j > 0 is s_j != 0 and the sum over the positives is the sum of
    all (METHOD.md 3). The sum is exact then rounded once: taken in float when every score is a
    multiple of 2^-30 (then every partial sum is exact), else with ``math.fsum``. A step's label
    comes from the one labelling rule (METHOD.md 2, ``mc_target``), applied once per distinct
    score, so the report's error steps are the written labels' zeros.
    """
    counted = np.ones(len(scores), bool) if keep is None else keep
    positive = (scores > 0.0) & counted
    n = np.add.reduceat(counted, starts, dtype=np.int64)
    n_pos = np.add.reduceat(positive, starts, dtype=np.int64)
    labelled_0 = [s for s in np.unique(scores).tolist() if mc_target(s, threshold=threshold) == 0.0]
    if labelled_0 == [0.0]:
        n_err = n - n_pos
    else:
        n_err = np.add.reduceat(np.isin(scores, labelled_0) & counted, starts, dtype=np.int64)
    values = scores if keep is None else np.where(keep, scores, 0.0)
    scaled = values * 2.0**30
    if len(values) < 2**21 and np.array_equal(scaled, np.floor(scaled)):
        sums = np.add.reduceat(values, starts)
    else:
        flat = values.tolist()
        ends = [*starts[1:].tolist(), len(flat)]
        sums = np.fromiter(map(math.fsum, map(flat.__getitem__, map(slice, starts.tolist(), ends))), np.float64,
                           len(starts))
    return n, n_pos, sums, n_err


def _empty(dtype: Any = np.int64) -> np.ndarray:
    return np.zeros(0, dtype)


@dataclass
class FileScan:
    """Pass-1 result for one file, as columns over its valid rollouts (file order).

    ``line``, ``offset``, ``size`` locate the line (parquet: the 1-based row, the 0-based row,
    1); ``n_steps`` (scored steps n), ``n_pos`` (s_j > 0), ``sum_mc`` (exact-then-rounded sum of
    s_j), ``n_err`` (labelled 0 under tau) and ``n_unannotated`` (num_mc_total == 0) are what
    selection and reports need. ``ids`` holds each row's own id, or None where the line has none
    (its id is then ``source:line``); ``ids`` is None when no line has one. ``rejected`` holds
    (line, id, reason, reason code); ``error`` the first bad line in strict mode.
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


class _Stop(Exception):
    """Strict mode met a bad line; the scan's ``error`` says which."""


class _Scanner:
    """Pass 1 over one file's lines; collects column parts chunk by chunk."""

    def __init__(self, path: Path, source: str, lenient: bool, unannotated: str, threshold: float) -> None:
        self.scan = FileScan(path=str(path), file=path.name, source=source)
        self.lenient, self.unannotated, self.threshold = lenient, unannotated, threshold
        self.parts: list[tuple[dict[str, np.ndarray], list[Any]]] = []

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
        numbers = score_numbers(np.asarray(checked.scores, np.float64), np.zeros(1, np.int64), self.threshold)
        return (checked.id, *(column[0] for column in numbers), checked.n_unannotated)

    def chunk(self, chunk: memoryview, starts: np.ndarray, ends: np.ndarray, base: int, first: int) -> None:
        """Scan one chunk of whole lines (at ``starts``/``ends`` in ``chunk``, newline excluded)
        that starts at byte ``base`` and line ``first``."""
        recs = None
        if _plain(chunk, starts, ends):
            try:
                recs = _DECODER.decode_lines(chunk)
            except _DECODE_ERRORS:
                recs = None
            if recs is not None and len(recs) != len(ends):
                recs = None
        numbers = np.arange(first, first + len(ends), dtype=np.int64)
        if recs is None:  # line by line, empty lines left out
            pieces = [bytes(chunk[a:b]) for a, b in zip(starts.tolist(), ends.tolist())]
            keep = np.fromiter((bool(raw) and not raw.isspace() for raw in pieces), bool, len(pieces))
            numbers, starts, ends = numbers[keep], starts[keep], ends[keep]
            recs = [_decode_one(raw) for raw in compress(pieces, keep)]
        self.consume(chunk, base, numbers, starts, ends - starts, recs)

    def consume(self, chunk: memoryview, base: int, lines: np.ndarray, starts: np.ndarray, sizes: np.ndarray,
                recs: list[Any]) -> None:
        """Fast numbers for decoded lines, the precise path for the rest, in line order."""
        count = len(lines)
        self.scan.n_lines += count
        decoded = np.fromiter((r is not None for r in recs), bool, count) if None in recs else np.ones(count, bool)
        where = np.flatnonzero(decoded)
        cols = {name: np.zeros(count, np.float64 if name == "sum_mc" else np.int64) for name in _NUMBERS}
        ids: list[Any] = [None] * count
        valid = np.zeros(count, bool)
        if len(where):
            sub_recs = recs if len(where) == count else [recs[j] for j in where.tolist()]
            ok, numbers, sub_ids = _fast_numbers(sub_recs, self.unannotated == "truncate", self.threshold)
            for name, values in zip(_NUMBERS, numbers):
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
                for name, value in zip(_NUMBERS, result[1:]):
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
            names = ("line", "offset", "size", *_NUMBERS)
            cols = {name: np.asarray(values, np.float64 if name == "sum_mc" else np.int64)
                    for name, values in zip(names, zip(*rows))}
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


def _plain(chunk: memoryview, starts: np.ndarray, ends: np.ndarray) -> bool:
    """True when every line of the chunk is ``{...}`` (optionally CR-ended) and the chunk is valid
    UTF-8. Then no JSON value can span two lines (a line ending inside a value would have to be
    followed by ``,``, ``}`` or ``]``), so a chunk that decodes into as many values as lines holds
    exactly one value per line."""
    arr = np.frombuffer(chunk, np.uint8)
    if not len(ends) or (ends - starts).min() < 2 or not (arr[starts] == 0x7B).all():
        return False
    last = ends - 1
    last -= arr[last] == 13
    if not (arr[last] == 0x7D).all() or not (last > starts).all():
        return False
    if arr.max() >= 0x80:
        try:
            str(chunk, "utf-8")
        except UnicodeDecodeError:
            return False
    return True


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


def _fast_numbers(recs: list[_Line], truncate: bool, threshold: float) -> tuple[np.ndarray, tuple[np.ndarray, ...], list[Any]]:
    """(certainly valid, the five numbers per rollout, own ids) for decoded lines, vectorised.

    The schema guarantees every rollout a step, scores in [0, 1] and non-empty texts; the rest of
    the rule is checked here, and a line that has nothing annotated left under truncation is left
    to the precise path, which rejects it.
    """
    count = len(recs)
    steps = list(map(_STEPS, recs))
    lens = np.fromiter(map(len, steps), np.int64, count)
    ok = _images_ok(list(map(_IMAGE, recs))) & _questions_ok(recs)
    flat = list(chain.from_iterable(steps))
    owner = np.repeat(np.arange(count), lens)
    starts = np.cumsum(lens) - lens
    correct, total = _counts(flat, _CORRECT), _counts(flat, _TOTAL)
    bad = ((correct > total) & (correct >= 0) & (total >= 0)) | ~_nonblank(list(map(_TEXT, flat)), typed=True)
    ok[owner[bad]] = False
    zero = total == 0
    n_unannotated = np.add.reduceat(zero, starts, dtype=np.int64)
    keep = None
    if truncate and zero.any():
        seen = np.cumsum(zero)
        keep = (seen - np.repeat(seen[starts] - zero[starts], lens)) == 0
        ok[zero[starts]] = False
    scores = np.fromiter(map(_SCORE, flat), np.float64, len(flat))
    return ok, (*score_numbers(scores, starts, threshold, keep), n_unannotated), list(map(_ID, recs))


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
            for chunk, starts, ends, base, first in chunks(path, CHUNK_BYTES):
                scanner.chunk(chunk, starts, ends, base, first)
    except _Stop:
        pass
    return scanner.finish()
