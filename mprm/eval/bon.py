"""Best-of-N reranking (METHOD.md 7 and 8, the paper's Table 3).

Each row of a Best-of-N file holds one question and N candidate solutions split into steps, each
with a correctness flag (format in docs/evaluation.md). Every candidate's steps are scored by the
reward model in one batched, resumable pass (mprm.eval.runner); a candidate's score is the
aggregate of its step scores (mean, as in the paper; min, last and prod as options, computed by
:mod:`mprm.eval.aggregate`, the same code as the RL reward :class:`mprm.rewards.StepReward`) and the
highest wins, ties going to the earlier candidate. Accuracy is reported per source and overall next to
three references: the first candidate, a uniform random pick (its expected accuracy, i.e. the
mean correctness, computed exactly) and the oracle (any candidate correct).

Reading and aggregation import no torch; only :func:`evaluate_bon` scores with a model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mprm.errors import UserError
from mprm.eval.aggregate import AGGREGATES, aggregate as aggregate_scores, check_aggregate
from mprm.files import atomic_write_text, require_file
from mprm.eval.settings import EvalSettings
from mprm.eval.tables import render_bon_md

__all__ = ["AGGREGATES", "bon_results", "candidate_items", "evaluate_bon", "pick", "read_bon"]


def read_bon(path: str | Path) -> list[dict[str, Any]]:
    """Read a Best-of-N JSONL file into validated rows.

    Each row: ``id`` (optional; the line number otherwise), ``data_source``, ``image`` or
    ``images`` (list of paths, or one path), ``question``, ``answer`` (optional),
    ``candidates``: [{``steps``: [str, ...], ``correct``: bool}]. Errors name file, line and field.
    """
    rows, seen = [], set()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}: not valid JSON ({exc.msg})") from None
            images = raw.get("images", raw.get("image"))
            images = [images] if isinstance(images, str) else images
            if not isinstance(images, list) or not all(isinstance(p, str) for p in images):
                raise UserError(f"{where}: field 'image'/'images' must be a path or a list of paths, got {images!r}")
            for key in ("data_source", "question"):
                if not isinstance(raw.get(key), str):
                    raise UserError(f"{where}: field {key!r} must be a string, got {raw.get(key)!r}")
            cands = raw.get("candidates")
            if not isinstance(cands, list) or not cands:
                raise UserError(f"{where}: field 'candidates' must be a non-empty list, got {cands!r}")
            for j, c in enumerate(cands):
                steps = c.get("steps") if isinstance(c, dict) else None
                if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
                    raise UserError(f"{where}: candidates[{j}].steps must be a non-empty list of strings, got {steps!r}")
                if not isinstance(c.get("correct"), bool):
                    raise UserError(f"{where}: candidates[{j}].correct must be true or false, got {c.get('correct')!r}")
            id_ = str(raw["id"]) if raw.get("id") not in (None, "") else str(n)
            if id_ in seen:
                raise UserError(f"{where}: duplicate id {id_!r}")
            seen.add(id_)
            rows.append({"id": id_, "data_source": raw["data_source"], "images": images,
                         "question": raw["question"], "answer": raw.get("answer", ""),
                         "candidates": [{"steps": list(c["steps"]), "correct": c["correct"]} for c in cands]})
    return rows


def candidate_items(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One scoring item per candidate, id ``<item id>#<candidate index>``."""
    return [
        {"id": f"{r['id']}#{j}", "item": r["id"], "candidate": j, "data_source": r["data_source"],
         "correct": c["correct"], "images": r["images"], "question": r["question"], "steps": c["steps"]}
        for r in rows for j, c in enumerate(r["candidates"])
    ]


def pick(step_scores: Sequence[Sequence[float]], aggregate: str = "mean") -> tuple[int, list[float]]:
    """(index of the chosen candidate, aggregate score of every candidate); ties -> the earliest.

    A candidate none of whose steps has a score aggregates to ``None`` and is picked only when no
    candidate has a score (then the first).
    """
    check_aggregate(aggregate)
    agg = [aggregate_scores(s, aggregate) for s in step_scores]
    return int(np.argmax([-np.inf if a is None else a for a in agg])), agg


def _accuracy(block: list[tuple[list[bool], int]]) -> dict[str, Any]:
    correct = [c for c, _ in block]
    return {
        "n_items": len(block),
        "reranked": float(np.mean([c[p] for c, p in block])),
        "first": float(np.mean([c[0] for c in correct])),
        "random": float(np.mean([np.mean(c) for c in correct])),
        "oracle": float(np.mean([any(c) for c in correct])),
    }


def bon_results(
    rows: Sequence[Mapping[str, Any]], step_scores: Mapping[str, Sequence[Sequence[float]]], *, aggregate: str = "mean"
) -> dict[str, Any]:
    """bon.json content from the rows and, per item id, the step scores of each candidate.

    {``aggregate``, ``n_items``, ``overall``, ``per_source``: {source: {``n_items``, ``reranked``,
    ``first``, ``random``, ``oracle``}}, ``picks``: [{``id``, ``data_source``, ``picked``,
    ``scores``}]}; accuracies are fractions.
    """
    if not rows:
        raise UserError("Best-of-N needs at least one item")
    per_source: dict[str, list[tuple[list[bool], int]]] = {}
    picks = []
    for r in rows:
        chosen, agg = pick(step_scores[r["id"]], aggregate)
        correct = [c["correct"] for c in r["candidates"]]
        per_source.setdefault(r["data_source"], []).append((correct, chosen))
        picks.append({"id": r["id"], "data_source": r["data_source"], "picked": chosen, "scores": agg})
    everything = [x for block in per_source.values() for x in block]
    return {
        "aggregate": aggregate,
        "n_items": len(rows),
        "overall": _accuracy(everything),
        "per_source": {s: _accuracy(b) for s, b in per_source.items()},
        "picks": picks,
    }


def evaluate_bon(bon_file: str | Path, model: Any, out_dir: str | Path, settings: EvalSettings, *,
                 aggregate: str = "mean") -> dict[str, Any] | None:
    """Score every candidate (``OUT/bon_predictions.jsonl``) and write ``bon.json`` + ``bon.md``.

    ``model``: a :class:`mprm.eval.loading.LazyModel` or a loaded reward model. A step cut by the
    token limit has no score: it is left out of its candidate's aggregate and counted
    (``cut_steps``), as the RL reward does, or is an error with ``settings.strict_length``.
    Rank 0 returns the bon.json content; other ranks (under ``accelerate launch``) ``None``.
    A missing ``bon_file``, an unset or missing ``settings.image_root`` or an unknown ``aggregate``
    is a UserError, raised before the model is loaded.
    """
    from mprm.eval.items import check_images
    from mprm.eval.runner import score_to_file

    check_aggregate(aggregate)
    bon_file = require_file(bon_file, "--bon")
    root = settings.require_image_root("--bon")
    rows = read_bon(bon_file)
    rows, skipped = check_images(rows, root, origin=str(bon_file), skip=settings.skip_missing_images)
    scored = score_to_file(candidate_items(rows), model, settings=settings, out_dir=out_dir, name="bon_predictions",
                           row_fields=("item", "candidate", "data_source", "correct"), desc="scoring candidates",
                           origin=str(bon_file))
    if scored is None:
        return None
    step_scores: dict[str, list[list[float]]] = {r["id"]: [] for r in rows}
    for s in scored:  # in item order, candidates in order
        step_scores[s["item"]].append([math.nan if x is None else float(x) for x in s["scores"]])
    result = bon_results(rows, step_scores, aggregate=aggregate)
    result["cut_steps"] = sum(x is None for s in scored for x in s["scores"])
    if settings.skip_missing_images:
        result["skipped"] = {"count": len(skipped), "items": skipped}
    out = Path(out_dir)
    atomic_write_text(out / "bon.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(out / "bon.md", render_bon_md(result))
    return result
