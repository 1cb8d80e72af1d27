"""Hand-made tiny corpora for the data-layer tests (no dependence on mprm.data.synth), as a fixture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def rollout(scores: list[float], *, totals: list[int] | None = None, **fields: Any) -> dict[str, Any]:
    """One VisualPRM400K-v1.1-Raw line with the given step MC scores (K/16)."""
    totals = totals or [16] * len(scores)
    rec: dict[str, Any] = {
        "image": "images/a.png",
        "question": "<image>\nHow many circles?",
        "question_orig": "How many circles?",
        "answer": "3",
        "response": "...",
        "num_mc_sequences": 16,
        "steps_with_score": [
            {"step": f"step {i}", "score": s, "num_mc_correct": round(s * t), "num_mc_total": t}
            for i, (s, t) in enumerate(zip(scores, totals))
        ],
    }
    rec.update(fields)
    return rec


def write_jsonl(path: Path, records: list[Any]) -> Path:
    """Write records (dicts become JSON, str/bytes are written verbatim as one line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for r in records:
            if isinstance(r, bytes):
                f.write(r + b"\n")
            elif isinstance(r, str):
                f.write(r.encode() + b"\n")
            else:
                f.write(json.dumps(r).encode() + b"\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def precise(path: Path, *, unannotated: str = "negative") -> list[tuple[int, Any, str | None]]:
    """The precise validator line by line, as the reference the fast scan must agree with:
    ``(line, CheckedRollout or None, reason or None)`` for every non-empty line. The lines are
    split here independently of mprm's reader (BOM skipped, 1-based numbers, blank lines counted
    but not listed)."""
    from mprm.data.validation import RecordError, check_rollout, parse_json_line

    data = Path(path).read_bytes()
    data = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    out = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            out.append((number, check_rollout(parse_json_line(raw), unannotated=unannotated), None))
        except RecordError as err:
            out.append((number, None, err.reason))
    return out


class _Tools:
    rollout = staticmethod(rollout)
    write_jsonl = staticmethod(write_jsonl)
    read_jsonl = staticmethod(read_jsonl)
    precise = staticmethod(precise)


import pytest  # noqa: E402


@pytest.fixture
def tools() -> type[_Tools]:
    """Helpers to write hand-made corpora: ``tools.rollout``, ``tools.write_jsonl``, ``tools.read_jsonl``,
    and the precise validator's reading of a file, ``tools.precise``."""
    return _Tools
