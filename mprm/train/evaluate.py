"""Held-out evaluation during training (``train.eval_every`` + ``eval.dev``).

The dev file is either VisualProcessBench-style (labels 1 / 0 / -1, METHOD.md 7) or the training
format (labels from the MC scores under ``data.label_threshold``, hard). Every step is scored in
one forward pass per batch (``mprm.models.score_batch``); metrics come from ``mprm.eval.metrics``
(the benchmark's own definitions: per-source macro-F1 averaged by step counts, pooled macro-F1,
AUC) plus step accuracy at ``eval.threshold``. Every rank runs it (ZeRO-3 forward passes need all
ranks); only rank 0 logs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mprm.config import Config
from mprm.train.data import is_training_jsonl


def dev_items(path: str | Path, *, label_threshold: float) -> list[dict[str, Any]]:
    """Examples with ``data_source`` and integer labels (1 correct, 0 incorrect, -1 ignored)."""
    if is_training_jsonl(path):
        from mprm.data.readers import read_training_jsonl

        items = []
        for n, row in enumerate(read_training_jsonl(path), start=1):
            scores = row.get("mc_scores")
            labels = [int(float(s) > label_threshold) for s in scores] if scores is not None else \
                [int(float(y) >= 0.5) for y in row["labels"]]
            items.append({"id": str(row.get("id", n)), "data_source": str(row.get("source", "dev")),
                          "images": list(row["images"]), "question": row["question"], "steps": list(row["steps"]),
                          "labels": labels})
        return items
    from mprm.eval.pipeline import benchmark_items

    return benchmark_items(path)


def evaluate_dev(model: Any, cfg: Config, *, image_root: str) -> dict[str, float | None]:
    """Score ``cfg.eval.dev`` with ``model``; return overall / pooled macro-F1, AUC and step accuracy."""
    from mprm.eval.metrics import metrics_at, step_data_from_rows
    from mprm.models import score_batch

    items = dev_items(cfg.eval.dev, label_threshold=cfg.data.label_threshold)
    if cfg.eval.max_items:
        items = items[:cfg.eval.max_items]
    scores = score_batch(model, [{k: it[k] for k in ("id", "images", "question", "steps")} for it in items],
                         image_root=image_root, batch_size=cfg.eval.batch_size)
    rows = []
    for it, sc in zip(items, scores):
        kept = [(y, s) for y, s in zip(it["labels"], sc) if not np.isnan(s)]  # steps cut by max_length
        rows.append({"id": it["id"], "data_source": it["data_source"],
                     "labels": [y for y, _ in kept], "scores": [s for _, s in kept]})
    data = step_data_from_rows(rows, origin=str(cfg.eval.dev))
    m = metrics_at(data, cfg.eval.threshold)
    accuracy = float(np.mean((data.scores >= cfg.eval.threshold) == data.labels)) if data.n_steps else None
    return {"overall": m["overall"], "macro_f1_pooled": m["macro_f1_pooled"], "auc": m["auc"],
            "accuracy": accuracy, "n_steps": data.n_steps}
