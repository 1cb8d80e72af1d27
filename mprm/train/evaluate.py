"""Held-out evaluation during training (``train.eval_every`` + ``eval.dev``).

The dev file is either VisualProcessBench-style (``process_correctness`` 1 / -1 / 0, METHOD.md 7,
read by the benchmark reader into the internal coding) or the training format (labels from the MC
scores by the one labelling rule, :func:`mprm.data.labels.mc_targets`, hard, under
``data.label_threshold``; stored targets of rows without MC scores read as labels by
:func:`mprm.data.labels.target_label`). Every step is scored in one forward pass per batch
(``mprm.models.score_batch``); metrics come from ``mprm.eval.metrics`` (the benchmark's own
definitions: per-source macro-F1 averaged by step counts, pooled macro-F1, AUC) plus step accuracy
at ``eval.threshold``. A step cut by the model's token limit has no score: it is left out and
counted (``cut_steps``), as in ``eval.py`` (decisions.md D-EVAL-6), rather than stopping a
training run at its evaluation. Every rank runs it (ZeRO-3 forward passes need all ranks); only
rank 0 logs. Nothing is written to disk here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from mprm.config import Config
from mprm.data.labels import target_label
from mprm.eval.settings import EvalSettings
from mprm.train.data import is_training_jsonl


def dev_items(path: str | Path, *, label_threshold: float) -> list[dict[str, Any]]:
    """Examples with ``data_source`` and internal integer labels (1 correct, 0 incorrect, -1 neutral).

    A training-format file is read by the one reader of that format (``read_training_jsonl``),
    each row becomes an example as ``mprm format`` makes it (``training_example``: hard targets
    from ``mc_scores`` under ``label_threshold``, else the stored ``labels``), and each target
    reads as a label by ``target_label``."""
    if is_training_jsonl(path):
        from mprm.data.examples import training_example
        from mprm.data.readers import read_training_jsonl

        items = []
        for n, row in enumerate(read_training_jsonl(path), start=1):
            ex = training_example(row, label_threshold=label_threshold)
            items.append({"id": str(row.get("id", n)), "data_source": str(row.get("source", "dev")),
                          "images": ex["images"], "question": ex["question"], "steps": list(ex["steps"]),
                          "labels": [target_label(y) for y in ex["labels"]]})
        return items
    from mprm.eval.items import benchmark_items

    return benchmark_items(path, flag="eval.dev")


def evaluate_dev(model: Any, cfg: Config, settings: EvalSettings) -> dict[str, float | int | None]:
    """Score ``cfg.eval.dev`` (at most ``cfg.eval.max_items`` items) with ``model`` under
    ``settings`` (``EvalSettings.from_config``: image root, batch size, threshold); overall /
    pooled macro-F1, AUC, step accuracy, counts."""
    from mprm.eval.metrics import metrics_at, step_data_from_rows
    from mprm.models import score_batch

    items = dev_items(cfg.eval.dev, label_threshold=cfg.data.label_threshold)
    if cfg.eval.max_items:
        items = items[:cfg.eval.max_items]
    scores = score_batch(model, [{k: it[k] for k in ("id", "images", "question", "steps")} for it in items],
                         image_root=str(settings.require_image_root("eval.dev")), batch_size=settings.batch_size,
                         too_long="nan")
    rows = [{"id": it["id"], "data_source": it["data_source"], "labels": it["labels"],
             "scores": [float(s) if math.isfinite(s) else None for s in sc]} for it, sc in zip(items, scores)]
    data = step_data_from_rows(rows, origin=str(cfg.eval.dev))
    m = metrics_at(data, settings.threshold)
    accuracy = float(np.mean((data.scores >= settings.threshold) == data.labels)) if data.n_steps else None
    return {"overall": m["overall"], "macro_f1_pooled": m["macro_f1_pooled"], "auc": m["auc"],
            "accuracy": accuracy, "n_steps": data.n_steps, "cut_steps": data.n_cut}
