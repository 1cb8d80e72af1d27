"""Readers for every data format mprm meets (docs/data_formats.md, METHOD.md 7 and 9).

* the MC-annotated training corpus (VisualPRM400K-v1.1-Raw): an ``annotations`` directory with
  one ``.jsonl`` per source (source = file stem, files in sorted name order), a single ``.jsonl``
  or a ``.parquet`` file of the same records: :func:`iter_corpus`;
* VisualProcessBench ``test.jsonl``: :func:`read_benchmark`;
* the project's training format (``selected.jsonl``): :func:`read_training_jsonl`;
* TRL stepwise supervision (``prompt``, ``completions``, ``labels``): :func:`read_trl_stepwise`,
  :func:`write_trl_stepwise`.

Every non-empty input line is accounted for: corpus readers yield rejected lines too (with their
reason) in lenient mode and raise :class:`~mprm.data.validation.DataError` in strict mode.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from mprm.data.jsonl import dumps_line, iter_lines
from mprm.data.records import BenchItem, Rollout, Step
from mprm.data.validation import (
    DataError,
    RecordError,
    check_bench_item,
    check_rollout,
    parse_json_line,
    record_id,
)

CORPUS_SUFFIXES = (".jsonl", ".parquet")


@dataclass
class ReadResult:
    """One non-empty input line: its rollout, or ``None`` and the reason it was rejected."""

    file: str
    line: int
    rollout: Rollout | None
    reason: str | None = None
    code: str | None = None
    id: str | None = None


def corpus_files(path: str | os.PathLike) -> list[tuple[Path, str]]:
    """``(file, source)`` pairs of a corpus path, in sorted file-name order.

    A directory means its ``*.jsonl`` / ``*.parquet`` files (or those of its ``annotations``
    sub-directory, the ``mprm synth`` layout); a file means itself. The source is the file stem.
    """
    path = Path(path)
    if path.is_dir():
        files = [p for p in path.iterdir() if p.is_file() and p.suffix in CORPUS_SUFFIXES]
        if not files and (path / "annotations").is_dir():
            return corpus_files(path / "annotations")
        if not files:
            raise FileNotFoundError(f"{path}: no .jsonl or .parquet files in this directory")
        return [(p, p.stem) for p in sorted(files, key=lambda p: p.name)]
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.suffix not in CORPUS_SUFFIXES:
        raise ValueError(f"{path}: expected a directory, a .jsonl or a .parquet file")
    return [(path, path.stem)]


def _objects(path: Path) -> Iterator[tuple[int, Any]]:
    """(line or 1-based row, parsed object or RecordError) of one .jsonl / .parquet file."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        row = 0
        for batch in pq.ParquetFile(path).iter_batches():
            for obj in batch.to_pylist():
                row += 1
                yield row, obj
        return
    for line, _, raw in iter_lines(path):
        try:
            yield line, parse_json_line(raw)
        except RecordError as err:
            yield line, err


def to_rollout(obj: Any, *, source: str, file: str, line: int, unannotated: str = "negative") -> Rollout:
    """Validate one parsed corpus line and build its :class:`Rollout` (raises RecordError)."""
    c = check_rollout(obj, unannotated=unannotated)
    steps = [Step(t, s, k, n) for t, s, k, n in zip(c.texts, c.scores, c.num_mc_correct, c.num_mc_total)]
    return Rollout(
        id=c.id if c.id is not None else f"{source}:{line}",
        source=source,
        images=c.images,
        question=c.question,
        answer=c.answer,
        steps=steps,
        extra=c.extra,
        file=file,
        line=line,
    )


def iter_corpus(
    path: str | os.PathLike,
    *,
    lenient: bool = False,
    stats: Counter | None = None,
    unannotated: str = "negative",
) -> Iterator[ReadResult]:
    """Every non-empty line of a corpus, files in sorted name order (METHOD.md 9).

    Strict mode raises :class:`DataError` (``FILE:LINE: field: problem (value)``) at the first bad
    line; lenient mode yields it with ``rollout=None`` and its reason. ``stats``, when given,
    counts ``lines``, ``kept``, ``rejected``, ``unannotated_steps`` and each reject code.
    """
    for file, source in corpus_files(path):
        for line, obj in _objects(file):
            if stats is not None:
                stats["lines"] += 1
            try:
                if isinstance(obj, RecordError):
                    raise obj
                rollout = to_rollout(obj, source=source, file=file.name, line=line, unannotated=unannotated)
            except RecordError as err:
                if not lenient:
                    raise DataError(str(file), line, err.reason) from None
                if stats is not None:
                    stats["rejected"] += 1
                    stats[err.code] += 1
                rid = record_id(None if isinstance(obj, RecordError) else obj, source, line)
                yield ReadResult(file.name, line, None, err.reason, err.code, rid)
                continue
            if stats is not None:
                stats["kept"] += 1
                stats["unannotated_steps"] += sum(s.unannotated for s in rollout.steps)
            yield ReadResult(file.name, line, rollout, None, None, rollout.id)


def read_corpus(path: str | os.PathLike, *, lenient: bool = False, unannotated: str = "negative") -> list[Rollout]:
    """The valid rollouts of a corpus as a list (small corpora; selection uses a streaming scan)."""
    return [r.rollout for r in iter_corpus(path, lenient=lenient, unannotated=unannotated) if r.rollout]


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
