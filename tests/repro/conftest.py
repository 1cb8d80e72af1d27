"""Fixture run folders for the reproduction-kit tests: real resolved configs (mprm.config), hand-made
eval metrics, run summaries and training logs with chosen numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from mprm.config import load_config, to_yaml

PAPER_SOURCES = {
    "MathVision": "MathVision_MINI",
    "MathVerse": "MathVerse_MINI_Vision_Only",
    "MMMU": "MMMU_DEV_VAL",
    "DynaMath": "DynaMath",
    "WeMath": "WeMath",
}


def metrics_json(overall: dict[str, float | None], per_source: dict[str, float] | None = None) -> dict[str, Any]:
    """eval.py's metrics.json layout with the given overall per threshold kind (None = absent)."""
    def result(value: float) -> dict[str, Any]:
        return {
            "overall": value, "macro_f1_pooled": value, "f1_positive": 0.8, "f1_negative": 0.4, "auc": 0.7,
            "n_steps": 100,
            "per_source": {PAPER_SOURCES[c]: {"macro_f1": v, "f1_positive": 0.8, "f1_negative": 0.4, "n_steps": 20}
                           for c, v in (per_source or {}).items()},
        }

    return {"thresholds": {k: (None if v is None else 0.5) for k, v in overall.items()},
            "results": {k: (None if v is None else result(v)) for k, v in overall.items()}}


@pytest.fixture
def metrics_factory() -> Callable[..., dict[str, Any]]:
    """``metrics_json`` as a fixture (test modules cannot import a conftest by name)."""
    return metrics_json


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """make_run(name, overrides, metrics=..., summary=..., train_rows=..., curve=..., final=True)."""
    runs = tmp_path / "runs"

    def make(name: str, overrides: list[str], *, metrics: dict | None = None, summary: dict | None = None,
             train_rows: list[dict] | None = None, curve: dict | None = None, final: bool = True,
             checkpoints: tuple[int, ...] = ()) -> Path:
        run = runs / name
        run.mkdir(parents=True)
        cfg = load_config(None, ["model.path=/models/base", f"train.output_dir={run}", *overrides])
        (run / "config.yaml").write_text(to_yaml(cfg))
        if final:
            (run / "final").mkdir()
            (run / "final" / "mprm_config.json").write_text("{}")
        for step in checkpoints:
            (run / "checkpoints" / f"step-{step:06d}" / "model").mkdir(parents=True)
        if metrics is not None:
            (run / "eval" / "final").mkdir(parents=True)
            (run / "eval" / "final" / "metrics.json").write_text(json.dumps(metrics))
        if summary is not None:
            (run / "run_summary.json").write_text(json.dumps(summary))
        if train_rows is not None:
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train_rows))
        if curve is not None:
            (run / "eval" / "curve.json").write_text(json.dumps(curve))
        return run

    make.runs_dir = runs  # type: ignore[attr-defined]
    runs.mkdir()
    return make
