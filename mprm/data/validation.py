"""Validation of input records: one precise rule, one error format (METHOD.md 9).

Every input line is either turned into a checked record or rejected with a
:class:`RecordError` naming the field, the problem and the offending value. Readers add the file
and the line and either stop (strict, the default: :class:`DataError`, ``mprm select`` exits 2)
or count the reason and go on (lenient). The message format is ``FILE:LINE: field: problem
(value)``; the reason *code* (field with list indices removed, then the problem) is what reports
count, so that ``steps_with_score[3].score`` and ``steps_with_score[0].score`` add up together.

This module is the single source of truth for what is valid: the fast scanner of
``mprm.data.jsonl`` accepts a line on its own only when it is certain this module would too, and
hands every other line here.
"""

from __future__ import annotations

import json
import math
import re
from itertools import repeat
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from mprm.data.labels import FILE_LABELS, from_file_coding, mc_targets
from mprm.errors import UserError

#: Fields of a VisualPRM400K-v1.1-Raw line that the record consumes; all others are passed through.
CONSUMED_FIELDS = frozenset({"id", "image", "answer", "steps_with_score"})
UNANNOTATED_MODES = ("negative", "truncate")
_INDEX = re.compile(r"\[\d+\]")
_STEP_TEXT, _STEP_SCORE = itemgetter("step"), itemgetter("score")


class RecordError(ValueError):
    """One record is invalid: ``field: problem (value)``."""

    def __init__(self, field: str, problem: str, value: Any = None) -> None:
        self.field = field
        self.problem = problem
        self.value = value
        super().__init__(self.reason)

    @property
    def reason(self) -> str:
        return f"{self.field}: {self.problem} ({show(self.value)})"

    @property
    def code(self) -> str:
        """The reason without list indices and value: what reject counts group by."""
        return f"{_INDEX.sub('[]', self.field)}: {self.problem}"


class DataError(UserError):
    """A bad input record in strict mode: ``FILE:LINE: field: problem (value)``."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        super().__init__(f"{file}:{line}: {reason}")

    def __reduce__(self):  # picklable across worker processes
        return (DataError, (self.file, self.line, self.reason))


class InputPathError(UserError):
    """A corpus path that is missing, of the wrong kind, or holds two files of one source."""


def show(value: Any, limit: int = 60) -> str:
    """A short, printable rendering of an offending value for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_json_line(raw: bytes) -> Any:
    """Parse one line; non-UTF-8 bytes and invalid JSON raise :class:`RecordError`.

    orjson answers the common case. What it refuses is decoded as UTF-8 (to name bad bytes) and
    given to the standard library, which also accepts ``NaN`` / ``Infinity``: those then fail as
    a score problem with a clearer message than "invalid JSON".
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.end]
        raise RecordError("line", f"not valid UTF-8 at byte {exc.start}", bad) from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RecordError("line", "invalid JSON", str(exc)) from None


class CheckedRollout(NamedTuple):
    """The validated content of one corpus line (before a source and line are attached)."""

    id: str | None
    images: list[str]
    question: str
    answer: str
    texts: list[str]
    scores: list[float]
    num_mc_correct: list[int | None]
    num_mc_total: list[int | None]
    extra: dict[str, Any]
    n_unannotated: int


def _images(obj: dict[str, Any]) -> list[str]:
    if "image" not in obj or obj["image"] is None:
        raise RecordError("image", "missing", obj.get("image"))
    image = obj["image"]
    if isinstance(image, str):
        if not image.strip():
            raise RecordError("image", "empty", image)
        return [image]
    if isinstance(image, list):
        if not image:
            raise RecordError("image", "empty", image)
        for i, path in enumerate(image):
            if not isinstance(path, str):
                raise RecordError(f"image[{i}]", "not a string", path)
            if not path.strip():
                raise RecordError(f"image[{i}]", "empty", path)
        return list(image)
    raise RecordError("image", "not a path or a list of paths", image)


def _question(obj: dict[str, Any]) -> tuple[str, str]:
    """(question, the key it came from): ``question_orig`` when it is a non-empty string."""
    orig = obj.get("question_orig")
    if isinstance(orig, str) and orig.strip():
        return orig, "question_orig"
    question = obj.get("question")
    if not isinstance(question, str):
        raise RecordError("question", "missing or not a string", question)
    return question, "question"


def _count(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise RecordError(field, "not a non-negative integer", value)
    return value


def check_step(step: Any, i: int) -> tuple[str, float, int | None, int | None]:
    """Validate ``steps_with_score[i]``: text, MC score in [0, 1], counts (METHOD.md 9)."""
    where = f"steps_with_score[{i}]"
    if not isinstance(step, dict):
        raise RecordError(where, "not an object", step)
    if "step" not in step:
        raise RecordError(f"{where}.step", "missing", None)
    text = step["step"]
    if not isinstance(text, str):
        raise RecordError(f"{where}.step", "not a string", text)
    if not text.strip():
        raise RecordError(f"{where}.step", "empty", text)
    if "score" not in step or step["score"] is None:
        raise RecordError(f"{where}.score", "missing", step.get("score"))
    score = step["score"]
    if type(score) is not float and type(score) is not int:
        raise RecordError(f"{where}.score", "not a number", score)
    score = float(score)
    if math.isnan(score):
        raise RecordError(f"{where}.score", "NaN", score)
    if not 0.0 <= score <= 1.0:
        raise RecordError(f"{where}.score", "outside [0, 1]", score)
    correct = _count(step.get("num_mc_correct"), f"{where}.num_mc_correct")
    total = _count(step.get("num_mc_total"), f"{where}.num_mc_total")
    if correct is not None and total is not None and correct > total:
        raise RecordError(f"{where}.num_mc_correct", "greater than num_mc_total", f"{correct} > {total}")
    return text, score, correct, total


def check_rollout(obj: Any, *, unannotated: str = "negative") -> CheckedRollout:
    """Validate one parsed corpus line (METHOD.md 9) or raise :class:`RecordError`.

    ``unannotated`` says what a step with ``num_mc_total == 0`` means (decisions.md D-DATA-2):
    ``"negative"`` keeps the paper's behaviour (its 0.0 counts as a measured negative);
    ``"truncate"`` cuts the rollout before its first such step, and a rollout with nothing left
    is rejected (``steps_with_score: no annotated step``).
    """
    if not isinstance(obj, dict):
        raise RecordError("line", "not a JSON object", type(obj).__name__)
    _images(obj)
    steps = obj.get("steps_with_score")
    if steps is None:
        raise RecordError("steps_with_score", "missing", None)
    if not isinstance(steps, list):
        raise RecordError("steps_with_score", "not a list", steps)
    if not steps:
        raise RecordError("steps_with_score", "empty", steps)
    for i, step in enumerate(steps):
        check_step(step, i)
    _question(obj)
    return build_checked(obj, unannotated=unannotated)


def build_checked(obj: dict[str, Any], *, unannotated: str = "negative") -> CheckedRollout:
    """The :class:`CheckedRollout` of a line already known to be valid (no checks repeated).

    :func:`check_rollout` validates and then calls this, and the selection's second pass calls
    it directly on lines its first pass validated, so both produce the same record.
    """
    if unannotated not in UNANNOTATED_MODES:
        raise ValueError(f"unannotated must be one of {UNANNOTATED_MODES}, got {unannotated!r}")
    image = obj["image"]
    images = [image] if isinstance(image, str) else list(image)
    question, question_key = _question(obj)
    steps = obj["steps_with_score"]
    texts = list(map(_STEP_TEXT, steps))
    scores = list(map(float, map(_STEP_SCORE, steps)))
    correct = list(map(dict.get, steps, repeat("num_mc_correct")))
    total = list(map(dict.get, steps, repeat("num_mc_total")))
    n_unannotated = total.count(0)
    if n_unannotated and unannotated == "truncate":
        cut = total.index(0)
        if cut == 0:
            raise RecordError("steps_with_score", "no annotated step", "num_mc_total == 0 at step 0")
        texts, scores, correct, total = texts[:cut], scores[:cut], correct[:cut], total[:cut]
    answer = obj.get("answer")
    if answer is None:
        answer = ""
    elif not isinstance(answer, str):
        answer = json.dumps(answer, ensure_ascii=False)
    rid = obj.get("id")
    extra = {k: v for k, v in obj.items() if k not in CONSUMED_FIELDS and k != question_key}
    # positional: a NamedTuple built from keywords costs about a microsecond more per line
    return CheckedRollout(None if rid is None else str(rid), images, question, answer, texts, scores, correct, total,
                          extra, n_unannotated)


def record_id(obj: Any, source: str, line: int) -> str:
    """The id a record is listed under: its own ``id`` when it has one, else ``source:line``."""
    if isinstance(obj, dict) and obj.get("id") is not None:
        return str(obj["id"])
    return f"{source}:{line}"


def training_dict(
    c: CheckedRollout, *, source: str, line: int, threshold: float = 0.0, soft: bool = False
) -> dict[str, Any]:
    """The training form of a checked line: one ``selected.jsonl`` row (docs/data_formats.md).

    Labels follow METHOD.md 2 through the one rule, :func:`mprm.data.labels.mc_targets`. The lists
    are the checked line's own (not copies): the row is written at once.
    """
    return {
        "id": c.id if c.id is not None else f"{source}:{line}",
        "source": source,
        "images": c.images,
        "question": c.question,
        "answer": c.answer,
        "steps": c.texts,
        "mc_scores": c.scores,
        "num_mc_correct": c.num_mc_correct,
        "num_mc_total": c.num_mc_total,
        "labels": mc_targets(c.scores, threshold=threshold, soft=soft),
        "extra": c.extra,
    }


def check_bench_item(obj: Any) -> dict[str, Any]:
    """Validate one VisualProcessBench line (METHOD.md 7); returns the fields of a BenchItem.

    ``process_correctness`` is in the file's coding (1 correct, -1 incorrect, 0 neutral); labels
    come back in mprm's internal coding through :func:`mprm.data.labels.from_file_coding`
    (decisions.md D-DATA-6).
    """
    if not isinstance(obj, dict):
        raise RecordError("line", "not a JSON object", type(obj).__name__)
    images = _images(obj)
    question = obj.get("question")
    if not isinstance(question, str):
        raise RecordError("question", "missing or not a string", question)
    response = obj.get("response")
    if not isinstance(response, dict):
        raise RecordError("response", "missing or not an object", response)
    steps = response.get("steps")
    if not isinstance(steps, list) or not steps:
        raise RecordError("response.steps", "missing, empty or not a list", steps)
    for i, text in enumerate(steps):
        if not isinstance(text, str) or not text.strip():
            raise RecordError(f"response.steps[{i}]", "empty or not a string", text)
    labels = response.get("process_correctness")
    if not isinstance(labels, list) or len(labels) != len(steps):
        raise RecordError(
            "response.process_correctness", f"not a list of {len(steps)} labels (one per step)", labels
        )
    for i, label in enumerate(labels):
        if type(label) is not int or label not in FILE_LABELS:
            raise RecordError(f"response.process_correctness[{i}]", "not 1, 0 or -1", label)
    answer = obj.get("answer")
    answer = "" if answer is None else answer if isinstance(answer, str) else json.dumps(answer)
    known = {"id", "image", "question", "answer", "response", "policy_model", "data_source"}
    return {
        "images": images,
        "question": question,
        "answer": answer,
        "steps": list(steps),
        "labels": from_file_coding(labels),
        "data_source": str(obj.get("data_source") or ""),
        "policy_model": str(obj.get("policy_model") or ""),
        "extra": {k: v for k, v in obj.items() if k not in known},
    }
