"""VisualProcessBench evaluation end to end: items -> predictions -> metrics.json / metrics.md.

Two entry points (docs/evaluation.md):

* :func:`evaluate_model` scores a benchmark with a reward model (mprm.eval.runner, torch) and
  computes the metrics; the optional dev file is scored the same way into ``OUT/dev/``.
* :func:`evaluate_predictions` recomputes the metrics from a predictions file with no model and
  no torch import (torch is only imported inside the scoring functions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from mprm.eval.metrics import StepData, step_data_from_rows
from mprm.eval.predictions import looks_like_predictions, read_predictions
from mprm.eval.tables import render_metrics_md
from mprm.eval.thresholds import summarise


def benchmark_items(path: str | Path) -> list[dict[str, Any]]:
    """The benchmark's items as scoring dicts; ``id`` is the item's own or its 1-based position."""
    from mprm.data.readers import read_benchmark

    items = []
    for n, it in enumerate(read_benchmark(path), start=1):
        items.append({"id": str(it.id) if it.id not in (None, "") else str(n), "data_source": it.data_source,
                      "images": list(it.images), "question": it.question, "steps": list(it.steps),
                      "labels": [int(y) for y in it.labels]})
    ids = [it["id"] for it in items]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = [i for i in ids if i in seen or seen.add(i)]
        raise ValueError(f"{path}: item ids must be unique (predictions are keyed by id); duplicated: {dup[:5]}")
    return items


def check_images(
    items: Sequence[dict[str, Any]], image_root: str | Path, *, origin: str, skip: bool
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(items whose images all exist, [{id, path}] of the first missing image of each other item).

    Without ``skip`` a missing image raises FileNotFoundError naming the file, item and path.
    """
    root = Path(image_root)
    kept, skipped = [], []
    for it in items:
        missing = next((p for p in it["images"] if not (root / p).is_file()), None)
        if missing is None:
            kept.append(it)
            continue
        if not skip:
            raise FileNotFoundError(
                f"{origin}: item {it['id']!r}: image {missing!r} not found under {root} "
                f"(pass --skip-missing-images to leave such items out and count them)"
            )
        skipped.append({"id": it["id"], "path": str(missing)})
    return kept, skipped


def write_metrics(out_dir: str | Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json`` and ``metrics.md`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    (out / "metrics.md").write_text(render_metrics_md(metrics), encoding="utf-8")


def _dev_data(
    dev: str | Path | None, *, out_dir: Path, model_dir: str | Path | None, image_root: str | Path | None,
    batch_size: int, resume: bool, skip_missing: bool, max_length: int | None = None,
) -> tuple[StepData | None, list[dict[str, str]] | None]:
    """The dev file as StepData: a predictions file is read; a benchmark file is scored first."""
    if dev is None:
        return None, None
    if looks_like_predictions(dev):
        return step_data_from_rows(read_predictions(dev), origin=str(dev)), None
    if model_dir is None:
        raise ValueError(f"--dev {dev}: a benchmark file (no 'scores'); scoring it needs --model, "
                         f"or pass a predictions.jsonl")
    from mprm.eval.runner import score_items

    items, skipped = check_images(benchmark_items(dev), image_root, origin=str(dev), skip=skip_missing)
    rows = score_items(items, model_dir=model_dir, image_root=image_root, out_dir=out_dir / "dev",
                       batch_size=batch_size, resume=resume, desc="scoring dev", max_length=max_length)
    return (step_data_from_rows(rows, origin=str(out_dir / "dev")) if rows is not None else None), skipped


def evaluate_predictions(
    predictions: str | Path, out_dir: str | Path, *, threshold: float = 0.5, dev: str | Path | None = None
) -> dict[str, Any]:
    """metrics.json / metrics.md from a predictions file (and a dev predictions file); no torch."""
    test = step_data_from_rows(read_predictions(predictions), origin=str(predictions))
    dev_data, _ = _dev_data(dev, out_dir=Path(out_dir), model_dir=None, image_root=None, batch_size=1,
                            resume=False, skip_missing=False)
    metrics = summarise(test, fixed=threshold, dev=dev_data)
    write_metrics(out_dir, metrics)
    return metrics


def evaluate_model(
    model_dir: str | Path,
    benchmark: str | Path,
    image_root: str | Path,
    out_dir: str | Path,
    *,
    batch_size: int = 8,
    threshold: float = 0.5,
    dev: str | Path | None = None,
    resume: bool = False,
    skip_missing_images: bool = False,
    max_length: int | None = None,
) -> dict[str, Any] | None:
    """Score ``benchmark`` with the model in ``model_dir`` and write predictions and metrics.

    Call it on every rank under ``accelerate launch``; rank 0 returns the metrics.json content,
    other ranks ``None``. ``max_length`` overrides the model's saved token limit. With ``skip_missing_images`` metrics.json gains a top-level ``skipped``
    field: ``{"count", "items": [{id, path}], "dev": {...} or null}``.
    """
    from mprm.eval.runner import score_items

    out = Path(out_dir)
    items, skipped = check_images(benchmark_items(benchmark), image_root, origin=str(benchmark),
                                  skip=skip_missing_images)
    dev_data, dev_skipped = _dev_data(dev, out_dir=out, model_dir=model_dir, image_root=image_root,
                                      batch_size=batch_size, resume=resume, skip_missing=skip_missing_images,
                                      max_length=max_length)
    rows = score_items(items, model_dir=model_dir, image_root=image_root, out_dir=out,
                       batch_size=batch_size, resume=resume, max_length=max_length)
    if rows is None:
        return None
    metrics = summarise(step_data_from_rows(rows, origin=str(out / "predictions.jsonl")), fixed=threshold,
                        dev=dev_data)
    if skip_missing_images:
        metrics["skipped"] = {
            "count": len(skipped), "items": skipped,
            "dev": None if dev_skipped is None else {"count": len(dev_skipped), "items": dev_skipped},
        }
    write_metrics(out, metrics)
    return metrics
