"""Atomic, resumable checkpoints: ``OUTPUT_DIR/checkpoints/step-NNNNNN/``.

Layout of one checkpoint::

    step-000050/
      model/               save_pretrained layout (load_reward_model reads it; eval curves)
      state/               model + optimiser states of every rank, RNG states (python, numpy,
                           torch) of every rank (accelerate's save_state; DeepSpeed's own
                           partitioned files under ZeRO)
      trainer_state.json   step, data cursor, schedule, counters, world size

Everything is written to ``step-NNNNNN.tmp`` and renamed when complete, so a SIGKILL at any
moment leaves either a complete checkpoint or a ``.tmp`` folder that resume ignores (and the next
save removes). Pruning keeps the last ``keep_last`` resumable checkpoints; with ``keep_models``
older ones keep their ``model/`` (the paper evaluates every 50-step checkpoint, METHOD.md 10.7)
and lose only ``state/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from mprm.train.strategy import Strategy

_NAME = re.compile(r"^step-(\d{6,})$")
STATE_FILE = "trainer_state.json"


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (renamed from ``.tmp``, with ``trainer_state.json``), oldest first."""
    root = Path(output_dir) / "checkpoints"
    found = []
    if root.is_dir():
        for d in root.iterdir():
            m = _NAME.match(d.name)
            if m and d.is_dir() and (d / STATE_FILE).is_file():
                found.append((int(m.group(1)), d))
    return sorted(found)


def latest_resumable(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint that still has its optimiser state, or None."""
    for _, d in reversed(list_checkpoints(output_dir)):
        if (d / "state").is_dir():
            return d
    return None


def resolve_resume(resume: str, output_dir: str | Path) -> Path | None:
    """``train.resume``: ``auto`` (latest in output_dir, or a fresh start), ``none``, or a folder."""
    if resume.lower() in ("none", "no", "false", ""):
        return None
    if resume == "auto":
        return latest_resumable(output_dir)
    path = Path(resume)
    if not (path / STATE_FILE).is_file() or not (path / "state").is_dir():
        raise FileNotFoundError(f"train.resume = {resume!r}: not a complete checkpoint folder (needs "
                                f"{STATE_FILE} and state/); use auto, none, or OUTPUT_DIR/checkpoints/step-NNNNNN")
    return path


def _fsync_tree(path: Path) -> None:
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                os.fsync(fh.fileno())


def save_checkpoint(strategy: Strategy, model: Any, *, output_dir: str | Path, step: int,
                    trainer_state: dict[str, Any], keep_last: int, keep_models: bool) -> Path:
    """Write the checkpoint of optimiser step ``step`` atomically; every rank must call this."""
    root = Path(output_dir) / "checkpoints"
    final = root / checkpoint_name(step)
    tmp = root / (checkpoint_name(step) + ".tmp")
    if strategy.is_main:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    strategy.barrier()
    if final.is_dir() and (final / STATE_FILE).is_file() and (final / "state").is_dir():
        return final  # resumed exactly at a saved step: nothing new to write
    strategy.save_state(tmp / "state")
    strategy.save_model(model, tmp / "model")
    if strategy.is_main:
        (tmp / STATE_FILE).write_text(json.dumps(trainer_state, indent=1, sort_keys=True), encoding="utf-8")
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        prune(output_dir, keep_last=keep_last, keep_models=keep_models)
    strategy.barrier()
    return final


def prune(output_dir: str | Path, *, keep_last: int, keep_models: bool) -> None:
    """Keep the optimiser state of the newest ``keep_last`` checkpoints; drop ``.tmp`` leftovers."""
    resumable = [(s, d) for s, d in list_checkpoints(output_dir) if (d / "state").is_dir()]
    for _, d in resumable[:-keep_last] if keep_last > 0 else []:
        if keep_models:
            shutil.rmtree(d / "state")
        else:
            shutil.rmtree(d)


def load_checkpoint(strategy: Strategy, checkpoint: Path) -> dict[str, Any]:
    """Restore model, optimiser and RNG states in place; return the trainer state (step, cursor)."""
    strategy.load_state(checkpoint / "state")
    return json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
