"""VisualProcessBench evaluation end to end: items -> predictions -> metrics.json / metrics.md.

Two entry points (docs/evaluation.md):

* :func:`evaluate_benchmark` scores a benchmark with a reward model (mprm.eval.runner, torch) and
  computes the metrics; the optional dev file is scored the same way into ``OUT/dev/``.
* :func:`evaluate_predictions` recomputes the metrics from a predictions file with no model and
  no torch import (torch is only imported inside the scoring functions).

Both write metrics.json and metrics.md atomically at the very end, and a scoring run first removes
the ones an earlier run left, so a failed run leaves no metrics that look like its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from mprm.errors import UserError
from mprm.files import atomic_write_text, prepare_output_dir, remove_files, require_file
from mprm.eval.items import benchmark_items, check_images
from mprm.eval.loading import model_info
from mprm.eval.metrics import StepData, step_data_from_rows
from mprm.eval.predictions import looks_like_predictions, read_predictions
from mprm.eval.settings import EvalSettings
from mprm.eval.tables import render_metrics_md
from mprm.eval.thresholds import summarise

__all__ = ["benchmark_items", "check_images", "evaluate_benchmark", "evaluate_predictions", "write_metrics"]

METRICS_FILES = ("metrics.json", "metrics.md")


def write_metrics(out_dir: str | Path, metrics: dict[str, Any]) -> None:
    """Write ``metrics.json`` and ``metrics.md`` into ``out_dir``, each atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.md", render_metrics_md(metrics))
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")  # last: it marks success


def _cut_block(data: StepData) -> dict[str, Any]:
    return {"count": data.n_cut, "items": [{"id": i, "cut": c, "steps": n} for i, c, n in data.cut]}


def _step_data(rows: Sequence[dict[str, Any]], origin: str) -> StepData:
    data = step_data_from_rows(rows, origin=origin)
    if data.n_steps == 0:
        raise UserError(f"{origin}: no scored non-neutral step (every label is neutral, or every step was cut): "
                        f"no threshold can be chosen and every metric is undefined")
    return data


def _metrics(test: StepData, dev: StepData | None, settings: EvalSettings) -> dict[str, Any]:
    metrics = summarise(test, fixed=settings.threshold, dev=dev)
    metrics["cut"] = {**_cut_block(test), "dev": None if dev is None else _cut_block(dev)}
    return metrics


def _dev_data(
    dev: str | Path | None, *, out_dir: Path, model: Any, settings: EvalSettings,
) -> tuple[StepData | None, list[dict[str, str]] | None, bool]:
    """(dev StepData, skipped dev items, complete): a predictions file is read; a benchmark is scored.

    ``complete`` is False on ranks other than 0 after scoring (they hold no rows).
    """
    if dev is None:
        return None, None, True
    require_file(dev, "--dev")
    if looks_like_predictions(dev):
        return _step_data(read_predictions(dev), str(dev)), None, True
    if model is None:
        raise UserError(f"{dev}: a benchmark file (its rows have no 'scores'): scoring it needs --model; "
                        f"or pass a predictions.jsonl as --dev")
    from mprm.eval.runner import score_to_file

    root = settings.require_image_root("--dev")
    items, skipped = check_images(benchmark_items(dev, flag="--dev"), root, origin=str(dev),
                                  skip=settings.skip_missing_images)
    rows = score_to_file(items, model, settings=settings, out_dir=out_dir / "dev", desc="scoring dev",
                         origin=str(dev))
    if rows is None:
        return None, skipped, False
    return _step_data(rows, str(out_dir / "dev" / "predictions.jsonl")), skipped, True


def evaluate_predictions(
    predictions: str | Path, out_dir: str | Path, settings: EvalSettings | None = None, *,
    dev: str | Path | None = None,
) -> dict[str, Any]:
    """metrics.json / metrics.md from a predictions file (and a dev predictions file); no torch.

    Of ``settings`` only ``threshold`` (the fixed one) applies: nothing is scored. ``None``: the
    defaults (:class:`EvalSettings`).
    """
    settings = EvalSettings() if settings is None else settings
    test = _step_data(read_predictions(require_file(predictions, "--predictions")), str(predictions))
    out = prepare_output_dir(out_dir)
    dev_data, _, _ = _dev_data(dev, out_dir=out, model=None, settings=settings)
    metrics = _metrics(test, dev_data, settings)
    write_metrics(out, metrics)
    return metrics


def evaluate_benchmark(
    model: Any, benchmark: str | Path, out_dir: str | Path, settings: EvalSettings, *, dev: str | Path | None = None
) -> dict[str, Any] | None:
    """Score ``benchmark`` with ``model`` and write predictions and metrics into ``out_dir``.

    ``model``: a :class:`LazyModel` (loaded once, only if something is left to score; shared by
    the dev file and the benchmark) or a loaded reward model. Call it on every rank under
    ``accelerate launch``; rank 0 returns the metrics.json content, other ranks ``None``.
    metrics.json holds ``cut`` (steps cut by the token limit, left out), ``model`` (its name and
    whether it is zero-shot) and, with ``skip_missing_images``, ``skipped``.
    """
    from mprm.eval.runner import score_to_file
    from mprm.train.strategy import process_state

    root = settings.require_image_root("--benchmark")
    items, skipped = check_images(benchmark_items(benchmark), root, origin=str(benchmark),
                                  skip=settings.skip_missing_images)
    out = prepare_output_dir(out_dir)
    if process_state().is_main_process:
        remove_files(out, METRICS_FILES)
    dev_data, dev_skipped, dev_ok = _dev_data(dev, out_dir=out, model=model, settings=settings)
    rows = score_to_file(items, model, settings=settings, out_dir=out, origin=str(benchmark))
    if rows is None or not dev_ok:
        return None
    metrics = _metrics(_step_data(rows, str(out / "predictions.jsonl")), dev_data, settings)
    info = model_info(model)
    if info is not None:
        metrics["model"] = info
    if settings.skip_missing_images:
        metrics["skipped"] = {
            "count": len(skipped), "items": skipped,
            "dev": None if dev_skipped is None else {"count": len(dev_skipped), "items": dev_skipped},
        }
    write_metrics(out, metrics)
    return metrics
