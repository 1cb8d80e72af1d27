"""What a run reports: metrics.jsonl, trackers (TensorBoard / wandb), a progress bar, run metadata.

``OUTPUT_DIR/metrics.jsonl`` holds one row per logged optimiser step (``step``, ``loss``,
``accuracy``, ``lr``, ``grad_norm``, ``samples_per_s``, ``tokens_per_s``, ``padding_ratio``,
``samples``, ``tokens``, ``wall_s``; ``dev/*`` rows when evaluating). On resume, rows past the
checkpoint's step (written before a kill, replayed now) are dropped first, so the file reads like
an unbroken run. ``run_summary.json`` (optimiser steps, samples, tokens, wall-clock, world size,
device type and count) is what ``mprm report`` turns into GPU-hours.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

PACKAGES = ("mprm", "torch", "transformers", "accelerate", "deepspeed", "peft", "datasets", "numpy", "pillow")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(path: str | Path) -> dict[str, Any]:
    """Commit and dirty flag of the repository holding ``path`` (None outside git)."""
    def run(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=str(path), capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = run("rev-parse", "HEAD")
    status = run("status", "--porcelain") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def write_run_info(output_dir: Path, *, config_yaml: str, argv: list[str], extra: dict[str, Any]) -> None:
    """Resolved config (``config.yaml``) and ``run_info.json`` (versions, git commit, command)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(config_yaml, encoding="utf-8")
    info = {"argv": argv, "executable": sys.executable, "versions": package_versions(),
            "git": git_commit(Path(__file__).resolve().parent), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **extra}
    (output_dir / "run_info.json").write_text(json.dumps(info, indent=1), encoding="utf-8")


def truncate_metrics(path: Path, last_step: int) -> None:
    """Keep the rows of steps <= ``last_step`` (and drop a half-written last line)."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if int(row.get("step", 0)) <= last_step:
            keep.append(line)
    path.write_text("".join(k + "\n" for k in keep), encoding="utf-8")


class RunLog:
    """Rank-0 writer of metrics.jsonl, trackers and the progress bar (no-op on other ranks)."""

    def __init__(self, output_dir: Path, *, is_main: bool, total_steps: int, start_step: int, progress_bar: bool,
                 tracker: Callable[..., None] | None = None) -> None:
        """``tracker(values, step=N)``: where numbers also go (``Strategy.log``), or None."""
        self.is_main, self.tracker = is_main, tracker
        self.path = output_dir / "metrics.jsonl"
        self.bar = None
        if not is_main:
            return
        truncate_metrics(self.path, start_step)
        self.fh = open(self.path, "a", encoding="utf-8")
        if progress_bar:
            self.bar = tqdm(total=total_steps, initial=start_step, unit="step", desc="train", file=sys.stderr,
                            dynamic_ncols=True)

    def log(self, row: dict[str, Any]) -> None:
        if not self.is_main:
            return
        self.fh.write(json.dumps(row, sort_keys=True) + "\n")
        self.fh.flush()
        if self.tracker is not None:
            self.tracker({k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))},
                         step=int(row["step"]))

    def progress(self, steps: int, **shown: float) -> None:
        if self.bar is not None:
            self.bar.update(steps)
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items()}, refresh=False)

    def close(self) -> None:
        if not self.is_main:
            return
        self.fh.close()
        if self.bar is not None:
            self.bar.close()
