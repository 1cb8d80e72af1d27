"""Readers of the data formats mprm meets besides the corpus (docs/data_formats.md, METHOD.md 7):

* VisualProcessBench ``test.jsonl``: :func:`read_benchmark`;
* the project's training format (``selected.jsonl``): :func:`read_training_jsonl`.

The MC-annotated corpus is read by ``mprm.data.jsonl.scan_file`` and turned into training rows
by ``mprm.data.pipeline.select_corpus``. Every reader here takes its lines from the same line
reader as the corpus scan, ``mprm.data.lines.iter_lines``, and its objects from the same parser,
``mprm.data.validation.parse_json_line``; bad lines raise
:class:`~mprm.data.validation.DataError` (``FILE:LINE: field: problem (value)``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

from mprm.data.lines import iter_lines, parquet_rows
from mprm.data.records import BenchItem
from mprm.data.validation import DataError, RecordError, check_bench_item, parse_json_line


def _objects(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or 1-based row, parsed object or RecordError) of one .jsonl / .parquet file."""
    if path.suffix == ".parquet":
        yield from parquet_rows(path)
        return
    for line, _, raw in iter_lines(path):
        try:
            yield line, parse_json_line(raw)
        except RecordError as err:
            yield line, err


def read_benchmark(path: str | os.PathLike, *, lenient: bool = False) -> list[BenchItem]:
    """VisualProcessBench ``test.jsonl`` (METHOD.md 7). ``BenchItem.id`` is the record's own ``id``
    as a string, None when it has none (``mprm.eval.items.benchmark_items`` then gives the item a
    digest of its content; the real benchmark has no ids)."""
    path = Path(path)
    items: list[BenchItem] = []
    for line, obj in _objects(path):
        try:
            if isinstance(obj, RecordError):
                raise obj
            fields = check_bench_item(obj)
        except RecordError as err:
            if lenient:
                continue
            raise DataError(str(path), line, err.reason) from None
        rid = obj.get("id")
        items.append(BenchItem(id=None if rid is None else str(rid), **fields))
    return items


def _strict(path: Path, line: int, field: str, problem: str, value: Any) -> DataError:
    return DataError(str(path), line, RecordError(field, problem, value).reason)


def _strict_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, JSON object) of a file; the first unparsable or non-object line raises DataError."""
    for line, obj in _objects(path):
        if isinstance(obj, RecordError):
            raise DataError(str(path), line, obj.reason)
        if not isinstance(obj, dict):
            raise _strict(path, line, "line", "not a JSON object", type(obj).__name__)
        yield line, obj


def read_training_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of the training format (``selected.jsonl``), checked for what the trainer relies on."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    for line, obj in _strict_objects(path):
        for key, kind in (("images", list), ("question", str), ("steps", list), ("labels", list)):
            if not isinstance(obj.get(key), kind):
                raise _strict(path, line, key, f"missing or not a {kind.__name__}", obj.get(key))
        if not obj["steps"] or len(obj["labels"]) != len(obj["steps"]):
            raise _strict(path, line, "labels", f"not one label per step ({len(obj['steps'])} steps)", obj["labels"])
        for i, y in enumerate(obj["labels"]):
            if type(y) not in (int, float) or not 0.0 <= y <= 1.0:
                raise _strict(path, line, f"labels[{i}]", "not a number in [0, 1]", y)
        rows.append(obj)
    return rows

