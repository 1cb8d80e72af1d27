"""Scored-rows files (``predictions.jsonl``, ``bon_predictions.jsonl``): format, checks, resume. No torch.

A ``predictions.jsonl`` row is exactly
``{"id", "data_source", "label_coding": "process_correctness", "labels", "scores"}``. Labels are in
the benchmark's own coding, 1 correct / -1 incorrect / 0 neutral, exactly as VisualProcessBench's
``process_correctness`` (METHOD.md 7): one coding per file format (STYLE.md 12). The coding is
named in every row because the old files of mprm held the same three values in the internal coding
(1 / 0 / -1, decisions.md D-DATA-6), so a value check alone cannot tell the two apart; a row
without the field is refused with a message saying what changed (decisions.md D-EVAL-7). In
memory, rows carry internal labels (:mod:`mprm.data.labels`): :func:`encode_row` and the readers
convert at the file boundary, as ``read_benchmark`` does for the benchmark.

A score is a finite number, or ``null`` for a step the model could not score because the token
limit cut it (always a trailing run of the item's steps; decisions.md D-EVAL-6). Best-of-N rows
(``id``, ``item``, ``candidate``, ``data_source``, ``correct``, ``scores``) carry no labels.

These files are written by mprm only, so reading is strict: UTF-8 without byte-order mark, ``\\n``
line ends, exactly the known fields, one row per id (decisions.md D-EVAL-9). A killed writer
leaves at most a truncated last line (no newline, not JSON): :func:`read_located` with
``tolerate_truncation`` drops it for a resume; anywhere else, and in a file read for its metrics,
it is an error naming the file and line.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, TextIO

from mprm.data.labels import FILE_LABELS, from_file_coding, to_file_coding
from mprm.errors import UserError
from mprm.files import atomic_write_text

LABEL_CODING = "process_correctness"
PREDICTION_FIELDS = ("id", "data_source", "labels", "scores")

_OLD_CODING_HELP = (
    "since this version mprm writes step labels in the benchmark's coding (1 correct, -1 incorrect, "
    "0 neutral, as process_correctness) and marks every row with \"label_coding\": \"process_correctness\"; "
    "a row without it was written in the old internal coding (1 correct, 0 incorrect, -1 neutral). "
    "Re-run eval.py, or convert the file: swap labels 0 and -1 and add the field to every row"
)

Located = tuple[str, dict[str, Any]]  # ("FILE:LINE", row in memory)


class PredictionsError(UserError):
    """A predictions file that cannot be used as it is (names the file and line)."""


def file_fields(row_fields: Sequence[str]) -> tuple[str, ...]:
    """The exact field set of a file row for in-memory ``row_fields`` (labels bring their coding)."""
    out: list[str] = []
    for key in ("id", *row_fields, "scores"):
        if key == "labels":
            out.append("label_coding")
        if key not in out:
            out.append(key)
    return tuple(out)


def encode_row(row: Mapping[str, Any]) -> str:
    """One file line (with its newline) for an in-memory row: labels to the file coding."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == "labels":
            out["label_coding"] = LABEL_CODING
            value = to_file_coding(value)
        out[key] = value
    return json.dumps(out, ensure_ascii=False, allow_nan=False) + "\n"


# -- checking one row -------------------------------------------------------------------------------


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_id(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "expected a non-empty string"


def _check_str(v: Any) -> str | None:
    return None if isinstance(v, str) else "expected a string"


def _check_labels(v: Any) -> str | None:
    if not isinstance(v, list):
        return "expected a list of step labels"
    bad = next((i for i, y in enumerate(v) if not _is_int(y) or y not in FILE_LABELS), None)
    return None if bad is None else f"[{bad}] = {v[bad]!r}, expected 1 (correct), -1 (incorrect) or 0 (neutral)"


def _check_scores(v: Any) -> str | None:
    if not isinstance(v, list):
        return "expected a list of step scores"
    for i, x in enumerate(v):
        if x is None:
            if any(y is not None for y in v[i:]):
                return f"[{i}] is null but a later step has a score (only the trailing steps cut by the token limit are null)"
            break
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
            return f"[{i}] = {x!r}, expected a finite number (or null for a step cut by the token limit)"
    return None


def _check_coding(v: Any) -> str | None:
    return None if v == LABEL_CODING else f"{v!r}, expected {LABEL_CODING!r}"


def _check_int(v: Any) -> str | None:
    return None if _is_int(v) else "expected an integer"


def _check_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected true or false"


_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "id": _check_id, "data_source": _check_str, "label_coding": _check_coding, "labels": _check_labels,
    "scores": _check_scores, "item": _check_id, "candidate": _check_int, "correct": _check_bool,
}


class _NonFinite(ValueError):
    pass


def _no_constants(token: str) -> Any:
    raise _NonFinite(token)


def decode_row(text: str, where: str, fields: Sequence[str]) -> dict[str, Any]:
    """Parse and check one line; the in-memory row (internal labels, no ``label_coding``)."""
    try:
        obj = json.loads(text, parse_constant=_no_constants)
    except _NonFinite as exc:
        raise PredictionsError(f"{where}: {exc.args[0]} is not a number JSON allows: scores must be finite "
                               f"(null for a step cut by the token limit)") from None
    except json.JSONDecodeError as exc:
        raise PredictionsError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}): "
                               f"each line must be one JSON object") from None
    if not isinstance(obj, dict):
        raise PredictionsError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if "labels" in fields and "labels" in obj and "label_coding" not in obj:
        raise PredictionsError(f"{where}: no 'label_coding' field: {_OLD_CODING_HELP}")
    missing = [k for k in fields if k not in obj]
    if missing:
        raise PredictionsError(f"{where}: missing field(s) {', '.join(missing)}: a row holds exactly "
                               f"{', '.join(fields)}")
    unknown = [k for k in obj if k not in fields]
    if unknown:
        raise PredictionsError(f"{where}: unknown field {unknown[0]!r}: a row holds exactly {', '.join(fields)}; "
                               f"remove the other fields")
    for key in fields:
        problem = _CHECKS.get(key, lambda _: None)(obj[key])
        if problem:
            raise PredictionsError(f"{where}: {key}{problem}" if problem.startswith("[") else f"{where}: {key}: {problem}")
    if "labels" in obj and len(obj["labels"]) != len(obj["scores"]):
        raise PredictionsError(f"{where}: {len(obj['labels'])} labels but {len(obj['scores'])} scores: "
                               f"a row has one label and one score per step")
    row = {k: v for k, v in obj.items() if k != "label_coding"}
    if "labels" in row:
        row["labels"] = from_file_coding(row["labels"])
    return row


# -- reading files ----------------------------------------------------------------------------------


def _lines(path: Path) -> list[tuple[int, str, bool]]:
    """(line number, text, ended with a newline) of every non-blank line; format errors raise."""
    if not path.exists():
        raise PredictionsError(f"{path}: no such file: check the path")
    if path.is_dir():
        raise PredictionsError(f"{path}: is a folder, expected a predictions .jsonl file")
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        raise PredictionsError(f"{path}:1: starts with a UTF-8 byte-order mark (BOM): mprm writes UTF-8 "
                               f"without one; save the file without BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PredictionsError(f"{path}:{line}: not valid UTF-8 (byte {exc.start}): the file is damaged "
                               f"or not a predictions file") from None
    out = []
    parts = text.split("\n")
    for n, line in enumerate(parts, start=1):
        if line.endswith("\r"):
            raise PredictionsError(f"{path}:{n}: line ends with CRLF (\\r\\n): mprm writes \\n line ends; "
                                   f"convert the file (e.g. dos2unix)")
        if line.strip():
            out.append((n, line, n < len(parts)))
    return out


def read_located(path: str | Path, *, fields: Sequence[str], tolerate_truncation: bool = False) -> list[Located]:
    """``("FILE:LINE", row)`` for every row of ``path`` (which must exist).

    With ``tolerate_truncation`` an unparsable last line without a newline (what a kill in the
    middle of a write leaves) is dropped; every other bad line raises PredictionsError.
    """
    path = Path(path)
    entries = _lines(path)
    out: list[Located] = []
    for i, (n, text, ended) in enumerate(entries):
        where = f"{path}:{n}"
        if i == len(entries) - 1 and not ended:
            try:
                json.loads(text)
            except json.JSONDecodeError:
                if tolerate_truncation:
                    break
                raise PredictionsError(f"{where}: truncated last line (no newline, not complete JSON): the run "
                                       f"writing it was killed; finish it with --resume, or delete the line") from None
        out.append((where, decode_row(text, where, fields)))
    return out


def read_predictions(path: str | Path, *, required: Sequence[str] = PREDICTION_FIELDS) -> list[dict[str, Any]]:
    """Rows of a complete scored-rows file, checked (every error names file and line).

    ``required`` are the in-memory fields (labels are returned in the internal coding). Empty
    files, duplicate ids and truncated last lines are errors.
    """
    path = Path(path)
    located = read_located(path, fields=file_fields([k for k in required if k not in ("id", "scores")]))
    if not located:
        raise PredictionsError(f"{path}: empty file (no rows): expected one row per scored item")
    seen: dict[str, str] = {}
    for where, row in located:
        if row["id"] in seen:
            raise PredictionsError(f"{where}: id {row['id']!r} already appears at {seen[row['id']]}: "
                                   f"one row per item")
        seen[row["id"]] = where
    return [row for _, row in located]


def looks_like_predictions(path: str | Path) -> bool:
    """True when the first non-empty line of a JSONL file is an object with ``scores``."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: no such file: check the path" if not path.exists()
                               else f"{path}: is a folder, expected a .jsonl file")
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise PredictionsError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
                return isinstance(row, dict) and "scores" in row
    raise PredictionsError(f"{path}: empty file (no rows)")


# -- matching rows to items (resume, merge) ---------------------------------------------------------


def match_rows(
    located: Iterable[Located], items: Sequence[Mapping[str, Any]], *, row_fields: Sequence[str], origin: str
) -> dict[str, dict[str, Any]]:
    """{id: row} of rows written for ``items``; a row written for anything else is an error.

    A row must have the id of an item of ``origin``, equal values of ``row_fields`` (source,
    labels, ...) and one score per step: otherwise the file was written for another benchmark (or
    the benchmark changed), and the error names the first such row. The same id twice with the
    same content (a merge interrupted after writing the merged file) counts once.
    """
    by_id = {str(it["id"]): it for it in items}
    rows: dict[str, dict[str, Any]] = {}
    fix = "it was written for another benchmark (or the benchmark changed): use another --output"
    for where, row in located:
        item = by_id.get(row["id"])
        if item is None:
            raise PredictionsError(f"{where}: row id {row['id']!r} is not an item of {origin}: {fix}")
        for key in row_fields:
            if row[key] != item[key]:
                shown = to_file_coding if key == "labels" else (lambda v: v)
                raise PredictionsError(f"{where}: row id {row['id']!r}: {key} = {shown(row[key])!r}, but the item in "
                                       f"{origin} has {shown(item[key])!r}: {fix}")
        if len(row["scores"]) != len(item["steps"]):
            raise PredictionsError(f"{where}: row id {row['id']!r}: {len(row['scores'])} scores for "
                                   f"{len(item['steps'])} steps of the item in {origin}: {fix}")
        if row["id"] in rows and rows[row["id"]] != row:
            raise PredictionsError(f"{where}: id {row['id']!r} appears twice with different contents: "
                                   f"use another --output")
        rows[row["id"]] = row
    return rows


# -- writing ----------------------------------------------------------------------------------------


def write_rows(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write ``rows`` to ``path`` atomically: a hidden temporary file, then a rename."""
    atomic_write_text(path, "".join(encode_row(r) for r in rows))


def cut_incomplete_tail(path: str | Path) -> None:
    """Remove a truncated last line (no newline) so that appending continues on a clean line."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, "rb+") as f:
        data = f.read()
        if data and not data.endswith(b"\n"):
            f.truncate(data.rfind(b"\n") + 1)


class PredictionWriter:
    """Appends rows to a file, flushing after every :meth:`write` (a kill loses at most one batch)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut_incomplete_tail(self.path)
        self._f: TextIO = open(self.path, "a", encoding="utf-8")

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self._f.write("".join(encode_row(r) for r in rows))
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def has_rows(path: Path) -> bool:
    """True when ``path`` is a file with any content."""
    return path.is_file() and path.stat().st_size > 0
