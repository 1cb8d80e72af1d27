"""Readers of the data formats mprm meets besides the corpus (docs/data_formats.md, METHOD.md 7):

* VisualProcessBench ``test.jsonl``: :func:`read_benchmark`;
* the project's training format (``selected.jsonl``): :func:`read_training_jsonl`;
* TRL stepwise supervision (``prompt``, ``completions``, ``labels``): :func:`read_trl_stepwise`,
  :func:`write_trl_stepwise`.

The MC-annotated corpus is read by ``mprm.data.jsonl.scan_file`` and turned into training rows
by ``mprm.data.pipeline.select_corpus``. Every reader here takes its lines from the same line
reader as the corpus scan, ``mprm.data.lines.iter_lines``, and its objects from the same parser,
``mprm.data.validation.parse_json_line``; bad lines raise
:class:`~mprm.data.validation.DataError` (``FILE:LINE: field: problem (value)``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from mprm.data.lines import dumps_line, iter_lines, parquet_rows
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
    """VisualProcessBench ``test.jsonl`` (METHOD.md 7). The id is the record's ``id`` or its line."""
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
        items.append(BenchItem(id=str(line) if rid is None else str(rid), **fields))
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


def read_trl_stepwise(path: str | os.PathLike) -> list[dict[str, Any]]:
    """TRL stepwise supervision (``prompt``, ``completions``, ``labels`` as booleans; optional
    ``images``/``image`` and ``id``), .jsonl or .parquet, as training-format rows."""
    path = Path(path)
    rows: list[dict[str, Any]] = []
    for line, obj in _strict_objects(path):
        prompt, completions, labels = obj.get("prompt"), obj.get("completions"), obj.get("labels")
        if not isinstance(prompt, str):
            raise _strict(path, line, "prompt", "missing or not a string", prompt)
        if not isinstance(completions, list) or not completions or not all(isinstance(c, str) for c in completions):
            raise _strict(path, line, "completions", "not a non-empty list of strings", completions)
        if not isinstance(labels, list) or len(labels) != len(completions):
            raise _strict(path, line, "labels", f"not a list of {len(completions)} booleans", labels)
        for i, y in enumerate(labels):
            if type(y) is not bool:
                raise _strict(path, line, f"labels[{i}]", "not a boolean", y)
        images = obj.get("images", obj.get("image", []))
        images = [images] if isinstance(images, str) else list(images or [])
        extra = {k: v for k, v in obj.items() if k not in ("id", "prompt", "completions", "labels", "images", "image")}
        rows.append(
            {
                "id": str(obj["id"]) if obj.get("id") is not None else str(line),
                "images": images,
                "question": prompt,
                "steps": list(completions),
                "labels": [1.0 if y else 0.0 for y in labels],
                "extra": extra,
            }
        )
    return rows


def write_trl_stepwise(rows: Iterable[dict[str, Any]], path: str | os.PathLike) -> int:
    """Write training-format rows as TRL stepwise supervision jsonl; returns the row count.

    TRL labels are booleans, so only hard labels (0/1) can be written; soft labels raise.
    """
    n = 0
    with open(path, "wb") as f:
        for n, row in enumerate(rows, start=1):
            labels = row["labels"]
            if any(y not in (0, 1) for y in labels):
                raise ValueError(f"row {n} (id {row.get('id')!r}): TRL stepwise labels are booleans, got soft labels {labels}")
            out = {
                "id": row.get("id"),
                "prompt": row["question"],
                "completions": list(row["steps"]),
                "labels": [bool(y) for y in labels],
                "images": list(row.get("images", [])),
            }
            f.write(dumps_line(out))
    return n
