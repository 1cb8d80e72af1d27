"""Lines and files: the one line reader of every jsonl file mprm reads, the corpus's files, and
the one jsonl line writer. No torch.

* :func:`chunks` cuts a file into runs of whole lines (memory-mapped) with the lines' spans;
  selection's first pass (``mprm.data.jsonl.scan_file``) reads the corpus through it and
  :func:`iter_lines` gives every other reader (benchmark, training format) its
  lines from it, so all of them number lines alike: 1-based over all lines, a leading UTF-8
  byte-order mark skipped, empty and whitespace-only lines counted but not returned;
  :func:`line_at` gives one line by its number (``mprm format``), :func:`count_lines` the count.
* :func:`corpus_files` turns corpus paths into ``(file, source)`` pairs (METHOD.md 9).
* :func:`parquet_rows` reads a parquet corpus or benchmark row by row; :func:`dumps_line` writes
  one JSON line.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import orjson

from mprm.data.validation import InputPathError

UTF8_BOM = b"\xef\xbb\xbf"
#: Bytes per chunk (rounded up to a whole line).
CHUNK_BYTES = 1 << 21
CORPUS_SUFFIXES = (".jsonl", ".parquet")


def chunks(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[memoryview, np.ndarray, np.ndarray, int, int]]:
    """``(chunk, line starts, line ends, byte offset, number of the first line)`` over a file in
    runs of whole lines of about ``chunk_bytes``: the chunk is a view of the memory-mapped file
    (no copy), starts and ends (newline excluded) are found in one vectorised pass. Every line
    is listed, empty ones included, so numbers count all lines; a final newline ends the last
    line rather than starting an empty one."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if not size:
            return
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(data)
    pos = 3 if data[:3] == UTF8_BOM else 0
    line = 1
    while pos < size:
        end = data.find(b"\n", pos + chunk_bytes)
        end = size if end < 0 else end + 1
        chunk = view[pos:end]
        ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == 10)
        if data[end - 1] != 10:
            ends = np.append(ends, end - pos)
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        yield chunk, starts, ends, pos, line
        line += len(ends)
        pos = end


def iter_lines(path: str | os.PathLike) -> Iterator[tuple[int, int, bytes]]:
    """``(line number, byte offset, raw bytes)`` of every non-empty line (1-based numbers; empty
    and whitespace-only lines are skipped but counted). The raw bytes exclude the newline."""
    for chunk, starts, ends, base, first in chunks(path):
        for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist())):
            raw = bytes(chunk[a:b])
            if raw and not raw.isspace():
                yield first + k, base + a, raw


def line_at(path: str | os.PathLike, number: int) -> bytes | None:
    """The raw bytes of 1-based line ``number`` (newline excluded; empty or blank lines as they
    are), numbered as :func:`iter_lines` numbers them; None when the file has fewer lines."""
    for chunk, starts, ends, _, first in chunks(path):
        k = number - first
        if 0 <= k < len(ends):
            return bytes(chunk[int(starts[k]) : int(ends[k])])
    return None


def count_lines(path: str | os.PathLike) -> int:
    """The number of lines of a file, empty ones included, as :func:`iter_lines` numbers them."""
    n = 0
    for _, _, ends, _, first in chunks(path):
        n = first + len(ends) - 1
    return n


def corpus_files(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[tuple[Path, str]]:
    """``(file, source)`` pairs of one or more corpus paths, files in sorted name order (METHOD.md 9).

    A directory means its ``*.jsonl`` / ``*.parquet`` files (or those of its ``annotations``
    sub-directory, the ``mprm synth`` layout); a file means itself. The source is the file stem,
    so two files of one stem are refused (:class:`~mprm.data.validation.InputPathError`).
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


def parquet_rows(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """``(1-based row, row as a dict)`` of a parquet file, batch by batch (pyarrow imported here).
    A file pyarrow cannot read (not parquet, truncated) is an :class:`InputPathError` naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    row = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches():
            for obj in batch.to_pylist():
                row += 1
                yield row, obj
    except pa.ArrowException as exc:
        where = f" after row {row}" if row else ""
        raise InputPathError(f"{path}: not a readable parquet file{where} ({exc}): check the file or convert it "
                             "to .jsonl") from None


def dumps_line(obj: Any) -> bytes:
    """One JSON line; orjson, or the standard library for what orjson refuses (lone surrogates)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:
        import json

        return (json.dumps(obj, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
