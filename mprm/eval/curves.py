"""Checkpoint curves: evaluate every checkpoint of a run (METHOD.md 10.7; decisions.md D-EVAL-4).

A run folder holds ``checkpoints/step-NNNNNN/`` (every 50 optimiser steps in the paper's protocol)
and ``final/``; the reward model of each is either the folder itself or its ``model/`` subfolder.
Each is evaluated into ``OUT/<name>/`` with resume on, so a rerun only scores what is missing.
``curve.json`` lists overall macro-F1 (fixed, dev, oracle thresholds) against the optimiser step
and names the best checkpoint under each threshold kind and the final one; ``curve.png`` plots it.
Both are written atomically after the last checkpoint, and a run first removes the ones an earlier
run left, so a curve on disk always covers every checkpoint of a finished run.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from mprm.errors import UserError
from mprm.files import atomic_target, atomic_write_text, prepare_output_dir, remove_files
from mprm.eval.loading import MODEL_MARKER
from mprm.eval.settings import EvalSettings
from mprm.eval.tables import KINDS

STEP_DIR = re.compile(r"^step-(\d+)$")
CURVE_FILES = ("curve.json", "curve.png")
STEP_KEYS = ("step", "optimizer_step", "global_step")


def model_folder(checkpoint: Path) -> Path:
    """The reward-model folder of a checkpoint: ``<ckpt>/model/`` when present, else ``<ckpt>``."""
    sub = checkpoint / "model"
    if (sub / MODEL_MARKER).is_file() or (sub.is_dir() and not (checkpoint / MODEL_MARKER).is_file()):
        return sub
    return checkpoint


def _final_step(final: Path) -> int | None:
    """The optimiser step of ``final/`` from a JSON file it holds (``step`` or similar), if any."""
    for path in sorted(final.glob("*.json")) + sorted(final.glob("*/*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(data, dict):
            for key in STEP_KEYS:
                if isinstance(data.get(key), int) and not isinstance(data.get(key), bool):
                    return int(data[key])
    return None


def find_checkpoints(run_dir: str | Path) -> list[dict[str, Any]]:
    """[{name, step, path (model folder), final}] for every ``step-N`` (by step) then ``final``.

    Raises UserError when the run folder does not exist or has neither.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise UserError(f"{run}: no such run folder (--checkpoints): check the path")
    found = []
    ckpts = run / "checkpoints"
    if ckpts.is_dir():
        for d in ckpts.iterdir():
            m = STEP_DIR.match(d.name)
            if m and d.is_dir():
                found.append({"name": d.name, "step": int(m.group(1)), "path": str(model_folder(d)), "final": False})
    found.sort(key=lambda c: c["step"])
    final = run / "final"
    if final.is_dir():
        step = _final_step(final)
        if step is None and found:
            step = found[-1]["step"]
        found.append({"name": "final", "step": step, "path": str(model_folder(final)), "final": True})
    if not found:
        raise UserError(f"{run}: no checkpoints/step-N/ folders and no final/ folder to evaluate: "
                        f"point --checkpoints at a training run's output folder")
    return found


def curve_summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    """curve.json content: the points, the best point per threshold kind, and the final point."""
    best: dict[str, Any] = {}
    for kind in KINDS:
        scored = [p for p in points if p["overall"].get(kind) is not None]
        if scored:
            top = max(scored, key=lambda p: p["overall"][kind])  # first of equals: the earliest step
            best[kind] = {"name": top["name"], "step": top["step"], "path": top["path"],
                          "overall": top["overall"][kind]}
    final = next((p for p in points if p["final"]), points[-1] if points else None)
    return {"points": points, "best": best, "final": final}


def plot_curve(summary: dict[str, Any], path: str | Path) -> None:
    """curve.png: overall macro-F1 (%) against optimiser step, one line per threshold kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    points = [p for p in summary["points"] if p["step"] is not None]
    for kind, style in zip(KINDS, ("o-", "s--", "^:")):
        pts = sorted((p["step"], 100 * p["overall"][kind]) for p in points if p["overall"].get(kind) is not None)
        if pts:
            ax.plot([s for s, _ in pts], [v for _, v in pts], style, label=kind if kind != "oracle" else "oracle (test-tuned)")
    final = summary.get("final")
    if final and final.get("step") is not None and final["overall"].get("fixed") is not None:
        ax.annotate("final", (final["step"], 100 * final["overall"]["fixed"]), textcoords="offset points",
                    xytext=(0, 8), ha="center")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("overall macro-F1 (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_target(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def evaluate_checkpoints(
    run_dir: str | Path, benchmark: str | Path, out_dir: str | Path, settings: EvalSettings, *,
    dev: str | Path | None = None,
) -> dict[str, Any] | None:
    """Evaluate every checkpoint into ``OUT/<name>/`` and write ``curve.json`` and ``curve.png``.

    Resume is always on (a rerun scores only what is missing; rows are matched to the benchmark by
    item id, so a folder of another benchmark is refused). Each checkpoint's model is loaded only
    if something is left to score, and released before the next. Returns the curve.json content
    on rank 0 (``None`` on other ranks).
    """
    from mprm.eval.loading import LazyModel, saved_model
    from mprm.eval.pipeline import evaluate_benchmark
    from mprm.train.strategy import process_state

    settings = dataclasses.replace(settings, resume=True)
    checkpoints = find_checkpoints(run_dir)
    sources = [saved_model(ck["path"]) for ck in checkpoints]  # every one checked before scoring any
    out = prepare_output_dir(out_dir)
    main = process_state().is_main_process
    if main:
        remove_files(out, CURVE_FILES)
    points = []
    for ck, source in zip(checkpoints, sources):
        model = LazyModel(source, settings)
        metrics = evaluate_benchmark(model, benchmark, out / ck["name"], settings, dev=dev)
        model.release()
        if metrics is not None:
            overall = {k: (metrics["results"][k] or {}).get("overall") for k in KINDS}
            points.append({**ck, "overall": overall})
    if not main:
        return None
    summary = curve_summary(points)
    plot_curve(summary, out / "curve.png")
    atomic_write_text(out / "curve.json", json.dumps(summary, indent=2) + "\n")
    return summary
