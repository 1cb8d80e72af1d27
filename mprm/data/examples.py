"""One record of any of mprm's input files as a model example (``mprm format``). No torch.

A line (or parquet row) of a raw corpus file (VisualPRM400K-v1.1-Raw, ``steps_with_score``), of a training
selection (``selected.jsonl``: ``steps`` + ``labels`` / ``mc_scores``) or of a benchmark file
(VisualProcessBench, ``response.process_correctness``) becomes ``{"id", "images", "question",
"steps", "labels"}``: the same validators as the readers, the one labelling rule for MC scores
(:func:`mprm.data.labels.mc_targets`) and the benchmark's coding mapped to the internal one
(neutral steps carry ``-1``: not scored, not trained on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mprm.data.labels import mc_targets
from mprm.data.validation import DataError, RecordError, check_bench_item, check_rollout, parse_json_line

KINDS = ("corpus", "training", "benchmark")


def record_kind(obj: dict[str, Any]) -> str:
    """Which format a parsed line is in, by its fields."""
    if "steps_with_score" in obj:
        return "corpus"
    if isinstance(obj.get("response"), dict):
        return "benchmark"
    if "steps" in obj:
        return "training"
    raise RecordError("line", "not a corpus (steps_with_score), training (steps) or benchmark (response) record",
                      sorted(obj)[:8])


def example_from_record(obj: Any, *, label_threshold: float = 0.0, soft: bool = False) -> tuple[str, dict[str, Any]]:
    """``(kind, example)`` of one parsed line; :class:`RecordError` names the bad field. Labels
    from MC scores follow the labelling rule under ``label_threshold`` (hard) or ``soft``."""
    if not isinstance(obj, dict):
        raise RecordError("line", "not a JSON object", type(obj).__name__)
    kind = record_kind(obj)
    if kind == "corpus":
        c = check_rollout(obj)
        return kind, {"id": c.id, "images": c.images, "question": c.question, "steps": c.texts,
                      "labels": mc_targets(c.scores, threshold=label_threshold, soft=soft)}
    if kind == "benchmark":
        b = check_bench_item(obj)
        return kind, {"id": obj.get("id"), "images": b["images"], "question": b["question"], "steps": b["steps"],
                      "labels": b["labels"]}
    return kind, training_example(obj, label_threshold=label_threshold, soft=soft)


def training_example(obj: dict[str, Any], *, label_threshold: float = 0.0, soft: bool = False) -> dict[str, Any]:
    """The example of a training-format row (``selected.jsonl``): its targets are recomputed from
    ``mc_scores`` by the labelling rule when the row has them, else its stored ``labels``."""
    steps = obj.get("steps")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, str) for s in steps):
        raise RecordError("steps", "missing, empty or not a list of strings", steps)
    labels = mc_targets(obj["mc_scores"], threshold=label_threshold, soft=soft) if obj.get("mc_scores") is not None \
        else obj.get("labels")
    images = obj.get("images") or []
    return {"id": obj.get("id"), "images": [str(p) for p in images], "question": str(obj.get("question", "")),
            "steps": steps, "labels": labels}


def read_example(path: str | Path, line: int = 1, *, label_threshold: float = 0.0,
                 soft: bool = False) -> tuple[str, dict[str, Any]]:
    """The example at 1-based ``line`` of ``path`` (counting every line, blank ones too; the row of
    a .parquet file), read by the shared line reader (``mprm.data.lines``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), line, "no such file" if not path.exists() else "not a file")
    if line < 1:
        raise DataError(str(path), line, f"line: must be >= 1 ({line})")
    try:
        kind, example = example_from_record(_record_at(path, line), label_threshold=label_threshold, soft=soft)
    except RecordError as exc:
        raise DataError(str(path), line, exc.reason) from None
    example["id"] = example["id"] if example["id"] is not None else f"{path.stem}:{line}"
    return kind, example


def _record_at(path: Path, line: int) -> Any:
    """The parsed record at ``line`` (a parquet file's row); DataError past the end or on a blank
    line, RecordError for a line that is not JSON."""
    from mprm.data.lines import count_lines, line_at, parquet_rows  # numpy: only when a file is read

    if path.suffix == ".parquet":
        n = 0
        for n, obj in parquet_rows(path):
            if n == line:
                return obj
        raise DataError(str(path), line, f"line: the file has only {n} rows")
    raw = line_at(path, line)
    if raw is None:
        raise DataError(str(path), line, f"line: the file has only {count_lines(path)} lines")
    if not raw.strip():
        raise DataError(str(path), line, "line: empty")
    return parse_json_line(raw)


def default_image_root(path: str | Path) -> Path:
    """Where a file's image paths are relative to, as the datasets are downloaded: the folder that
    holds ``annotations/`` for a VisualPRM400K annotation file (its paths start with
    ``VisualPRM400K-v1.1-Raw/``), else the file's own folder (VisualProcessBench: ``test.jsonl``
    beside ``images/``)."""
    path = Path(path).resolve()
    folder = path if path.is_dir() else path.parent
    return folder.parent if folder.name == "annotations" else folder
