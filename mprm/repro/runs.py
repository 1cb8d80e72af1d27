"""Finding and reading run folders for ``mprm report`` (no torch).

A run folder is what ``train.py`` writes (docs/design.md; docs/training.md): the resolved config,
``metrics.jsonl``, ``run_summary.json``, ``checkpoints/step-NNNNNN/`` and ``final/``. The sweep
(``launch/sweep.py``) adds the evaluation below it: ``eval/final/metrics.json`` for the final model
and, when curves were asked for, ``eval/curve.json`` with every checkpoint in ``eval/step-NNNNNN/``
(eval.py --checkpoints RUN --output RUN/eval reuses ``eval/final``; docs/decisions.md D-REPRO-2).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mprm.errors import UserError
from mprm.repro.settings import Setting, setting_from_config

#: The resolved config train.py saves in the run folder.
CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "run_summary.json"
TRAIN_METRICS_FILE = "metrics.jsonl"
FINAL_DIR = "final"
EVAL_DIR = "eval"
FINAL_EVAL_DIR = f"{EVAL_DIR}/final"
EVAL_METRICS = f"{FINAL_EVAL_DIR}/metrics.json"
CURVE_FILE = f"{EVAL_DIR}/curve.json"
_MARKERS = (CONFIG_FILE, SUMMARY_FILE, TRAIN_METRICS_FILE, EVAL_METRICS)


class RunFolderError(UserError):
    """A file in a run folder that exists but cannot be used (names the file and the problem)."""


@dataclass
class Run:
    """Everything the report needs from one run folder; ``problems`` lists what is missing."""

    path: Path
    name: str
    config: dict[str, Any] | None = None
    family: str | None = None
    setting: Setting | None = None
    metrics: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    progress: dict[str, Any] | None = None
    curve: dict[str, Any] | None = None
    has_final: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def model_path(self) -> str | None:
        model = (self.config or {}).get("model") or {}
        return None if model.get("path") is None else str(model["path"])


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from exc


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise RunFolderError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise RunFolderError(f"{path}: the resolved config must be a mapping, got {type(data).__name__}")
    return data


def training_progress(path: Path) -> dict[str, Any] | None:
    """Steps, samples, tokens and wall-clock from train.py's ``metrics.jsonl`` (no run_summary.json).

    Uses the rows that carry ``samples`` (dev-evaluation rows do not); a truncated last line from a
    kill is ignored. train.py's ``wall_s`` runs on across a resume (it restarts from the
    checkpoint's value and the rows past the checkpoint are dropped and replayed), so the last
    complete row holds the whole run's wall-clock (time lost after a killed session's last
    checkpoint is not counted).
    """
    last: dict[str, Any] | None = None
    with path.open("rb") as fh:
        for raw in fh:
            try:
                row = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict) or "samples" not in row:
                continue
            last = row
    if last is None:
        return None
    return {"step": int(last["step"]), "samples": int(last["samples"]), "tokens": int(last["tokens"]),
            "wall_s": float(last.get("wall_s", 0.0))}


def find_run_dirs(runs_dir: Path) -> list[Path]:
    """Every folder below ``runs_dir`` (itself included) that holds a run's marker files.

    Searching stops at a run folder, so its checkpoints and eval outputs are not mistaken for runs.
    """
    found: list[Path] = []
    for root, dirs, files in os.walk(runs_dir):
        here = Path(root)
        if any((here / m).is_file() for m in _MARKERS):
            found.append(here)
            dirs[:] = []
        else:
            dirs.sort()
    return sorted(found)


def _check_metrics(metrics: Any, path: Path) -> dict[str, Any]:
    if not isinstance(metrics, dict) or not isinstance(metrics.get("results"), dict):
        raise RunFolderError(f"{path}: field 'results' missing; expected eval.py's metrics.json layout")
    if not isinstance(metrics.get("thresholds"), dict):
        raise RunFolderError(f"{path}: field 'thresholds' missing; expected eval.py's metrics.json layout")
    return metrics


def load_run(path: Path, runs_dir: Path) -> Run:
    """Read one run folder; anything missing or unusable is recorded in ``Run.problems``."""
    name = path.relative_to(runs_dir).as_posix() if path != runs_dir else path.name
    run = Run(path=path, name=name)
    cfg_path = path / CONFIG_FILE
    try:
        if cfg_path.is_file():
            run.config = _load_yaml(cfg_path)
            run.family, run.setting = setting_from_config(run.config, source=str(cfg_path))
        else:
            run.problems.append(f"no resolved config ({CONFIG_FILE})")
    except (RunFolderError, KeyError, ValueError) as exc:
        run.problems.append(str(exc).strip("'\""))
    run.has_final = (path / FINAL_DIR).is_dir()
    if not run.has_final:
        run.problems.append(f"training not finished (no {FINAL_DIR}/)")
    for rel, attr in ((EVAL_METRICS, "metrics"), (SUMMARY_FILE, "summary"), (CURVE_FILE, "curve")):
        file = path / rel
        if not file.is_file():
            if rel != CURVE_FILE:
                run.problems.append(f"no {rel}")
            continue
        try:
            value = _load_json(file)
            setattr(run, attr, _check_metrics(value, file) if attr == "metrics" else value)
        except RunFolderError as exc:
            run.problems.append(str(exc))
    if (path / TRAIN_METRICS_FILE).is_file():
        run.progress = training_progress(path / TRAIN_METRICS_FILE)
    return run


def load_runs(runs_dir: str | Path) -> list[Run]:
    """Every run below ``runs_dir``, complete or not, in name order."""
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs directory {root} does not exist")
    return [load_run(p, root) for p in find_run_dirs(root)]
