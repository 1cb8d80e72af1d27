"""``predictions.jsonl``: one row per scored item, appended as computed, resumable. No torch.

A row holds ``id``, ``data_source``, ``labels`` and ``scores`` (benchmark items) and may carry
more fields (Best-of-N candidates add ``item``, ``candidate``, ``correct``). Rows are appended and
flushed after every batch, so a killed run loses at most the batch in flight; a kill can also leave
a truncated last line, which :func:`recover` detects and cuts off before the file is appended to
again. A bad line anywhere else is an error: it is not what a kill produces.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, TextIO

from mprm.errors import UserError

REQUIRED = ("id", "data_source", "labels", "scores")


class PredictionsError(UserError):
    """A predictions file that cannot be used as it is (names the file and line)."""


def _parse(line: str, where: str, required: Sequence[str]) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise PredictionsError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise PredictionsError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [k for k in required if k not in row]
    if missing:
        raise PredictionsError(f"{where}: missing field(s) {', '.join(missing)}")
    row["id"] = str(row["id"])
    return row


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, ended with a newline) for every non-empty line."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield n, line, line.endswith("\n")


def read_predictions(path: str | Path, *, required: Sequence[str] = REQUIRED) -> list[dict[str, Any]]:
    """Read a complete predictions file; every line must be a valid row (error names file:line)."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: no such predictions file")
    return [_parse(text, f"{path}:{n}", required) for n, text, _ in _lines(path)]


def recover(path: str | Path, *, required: Sequence[str] = REQUIRED) -> list[dict[str, Any]]:
    """Rows of a possibly killed run's file; a truncated or unparsable LAST line is cut off.

    The file is rewritten in place up to the last good row (so appending continues cleanly).
    Returns [] when the file does not exist. A bad line before the last one raises.
    """
    path = Path(path)
    if not path.exists():
        return []
    entries = list(_lines(path))
    rows: list[dict[str, Any]] = []
    for i, (n, text, _) in enumerate(entries):
        last = i == len(entries) - 1
        try:
            row = _parse(text, f"{path}:{n}", required)
        except PredictionsError:
            if last:
                break
            raise
        rows.append(row)  # a complete last object without its newline is kept; rewriting adds it
    write_rows(path, rows)
    return rows


def write_rows(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


class PredictionWriter:
    """Appends rows to a predictions file, flushing after every :meth:`write` call."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: TextIO = open(self.path, "a", encoding="utf-8")

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def order_rows(rows: Iterable[Mapping[str, Any]], order: Sequence[str], *, origin: str) -> list[dict[str, Any]]:
    """Rows de-duplicated by id and put in ``order`` (the benchmark's item order).

    Raises PredictionsError when a row's id is not in ``order`` (a predictions file from another
    benchmark) or when the same id carries two different rows.
    """
    position = {id_: i for i, id_ in enumerate(order)}
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        id_ = str(row["id"])
        if id_ not in position:
            raise PredictionsError(f"{origin}: row id {id_!r} is not an item of this benchmark")
        if id_ in by_id and by_id[id_] != row:
            raise PredictionsError(f"{origin}: id {id_!r} appears twice with different contents")
        by_id[id_] = dict(row)
    return sorted(by_id.values(), key=lambda r: position[r["id"]])


def looks_like_predictions(path: str | Path) -> bool:
    """True when the first non-empty line of a JSONL file is a row with ``scores``."""
    for _, text, _ in _lines(Path(path)):
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PredictionsError(f"{path}: first line is not valid JSON ({exc.msg})") from None
        return isinstance(row, dict) and "scores" in row
    raise PredictionsError(f"{path}: empty file")
