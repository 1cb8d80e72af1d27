"""Atomic, resumable checkpoints: ``OUTPUT_DIR/checkpoints/step-NNNNNN/``.

Layout of one checkpoint::

    step-000050/
      model/               save_pretrained layout (load_reward_model reads it; eval curves)
      state/               model + optimiser states of every rank, RNG states (python, numpy,
                           torch) of every rank (accelerate's save_state; DeepSpeed's own
                           partitioned files under ZeRO)
      trainer_state.json   step, data cursor, schedule, counters, world size
      manifest.json        every file above with its size, written last (a resume checks it)

Everything is written to ``step-NNNNNN.tmp`` and renamed when complete, so a SIGKILL at any
moment leaves either a complete checkpoint or a ``.tmp`` folder that resume ignores (and the next
save removes). A checkpoint damaged later (a file truncated or deleted: its sizes no longer match
``manifest.json``) is skipped on resume, with a warning naming it and the one resumed from. A save
that fails (e.g. a full disk) removes its ``.tmp`` folder and raises an error naming the path, the
space free and the size of the previous checkpoint, which stays intact. Pruning keeps the last ``keep_last`` resumable checkpoints; with ``keep_models``
older ones keep their ``model/`` (the paper evaluates every 50-step checkpoint, METHOD.md 10.7)
and lose only ``state/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mprm.errors import UserError, warn
from mprm.train.strategy import Strategy

_NAME = re.compile(r"^step-(\d{6,})$")
STATE_FILE = "trainer_state.json"
MANIFEST_FILE = "manifest.json"


class CheckpointError(UserError):
    """A checkpoint that cannot be written or resumed from (names the path and the fix)."""


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Saved checkpoints (renamed from ``.tmp``), oldest first; :func:`problem` tells a damaged one."""
    root = Path(output_dir) / "checkpoints"
    found = []
    if root.is_dir():
        for d in root.iterdir():
            m = _NAME.match(d.name)
            if m and d.is_dir():
                found.append((int(m.group(1)), d))
    return sorted(found)


def _files(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != MANIFEST_FILE}


def problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (None when it can): a missing or unreadable
    trainer state, no optimiser state, or files that differ from its manifest."""
    try:
        state = json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))
        int(state["step"])
    except FileNotFoundError:
        return f"no {STATE_FILE}"
    except (ValueError, KeyError, TypeError) as exc:
        return f"{STATE_FILE} unreadable ({type(exc).__name__})"
    if not (checkpoint / "state").is_dir():
        return "no state/ (optimiser state pruned or missing)"
    manifest = checkpoint / MANIFEST_FILE
    if not manifest.is_file():
        return None  # written by an mprm before manifests: nothing to compare against
    try:
        expected = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (ValueError, KeyError, TypeError):
        return f"{MANIFEST_FILE} unreadable"
    actual = _files(checkpoint)
    for name, size in expected.items():
        if name not in actual:
            return f"{name} missing"
        if actual[name] != size:
            return f"{name} has {actual[name]} bytes, {size} were written"
    return None


def latest_resumable(output_dir: str | Path) -> Path | None:
    """The newest checkpoint that can be resumed from, or None when there is none at all.

    Damaged newer checkpoints are skipped with a warning naming them and the one used; when every
    checkpoint with optimiser state is damaged, :class:`CheckpointError` (a fresh start would
    silently throw the run's progress away).
    """
    damaged = []
    for _, d in reversed(list_checkpoints(output_dir)):
        if not (d / "state").is_dir():
            continue  # pruned to its model: not resumable, not damaged
        why = problem(d)
        if why is None:
            for bad, reason in damaged:
                warn(f"{bad}: cannot resume from it ({reason}); resuming from the newest complete checkpoint {d}")
            return d
        damaged.append((d, why))
    if damaged:
        listed = "; ".join(f"{d} ({why})" for d, why in damaged)
        raise CheckpointError(f"{Path(output_dir) / 'checkpoints'}: no complete checkpoint to resume from: {listed}; "
                              "remove the damaged folders, or start over with train.resume=none")
    return None


def resolve_resume(resume: str, output_dir: str | Path) -> Path | None:
    """``train.resume``: ``auto`` (latest in output_dir, or a fresh start), ``none``, or a folder."""
    if resume.lower() in ("none", "no", "false", ""):
        return None
    if resume == "auto":
        return latest_resumable(output_dir)
    path = Path(resume)
    why = problem(path) if path.is_dir() else "no such folder"
    if why is not None:
        raise CheckpointError(f"train.resume = {resume!r}: not a complete checkpoint ({why}); use auto, none, or "
                              "OUTPUT_DIR/checkpoints/step-NNNNNN")
    return path


def _fsync_tree(path: Path) -> None:
    for root, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                os.fsync(fh.fileno())


@contextmanager
def folder_written_whole(strategy: Strategy, final: Path,
                         on_failure: Callable[[BaseException], UserError]) -> Iterator[Path]:
    """Yield ``FINAL.tmp`` to write into (every rank); when the block ends, rank 0 renames it over
    ``final``. A write failure (full disk, file-size limit) removes the ``.tmp`` folder and raises
    ``on_failure(exc)``; any other error propagates as it is."""
    tmp = final.with_name(final.name + ".tmp")
    if strategy.is_main:
        final.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
    strategy.barrier()
    try:
        yield tmp
        if strategy.is_main:
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
    except (OSError, RuntimeError) as exc:
        if not is_write_failure(exc):
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        raise on_failure(exc) from exc


def save_checkpoint(strategy: Strategy, model: Any, *, output_dir: str | Path, step: int,
                    trainer_state: dict[str, Any], keep_last: int, keep_models: bool) -> Path:
    """Write the checkpoint of optimiser step ``step`` atomically; every rank must call this."""
    final = Path(output_dir) / "checkpoints" / checkpoint_name(step)
    if final.is_dir() and problem(final) is None:
        return final  # resumed exactly at a saved step: nothing new to write
    with folder_written_whole(strategy, final, lambda exc: _save_failed(exc, final, output_dir)) as tmp:
        strategy.save_state(tmp / "state")
        strategy.save_model(model, tmp / "model")
        if strategy.is_main:
            (tmp / STATE_FILE).write_text(json.dumps(trainer_state, indent=1, sort_keys=True), encoding="utf-8")
            (tmp / MANIFEST_FILE).write_text(json.dumps({"files": _files(tmp)}, indent=1), encoding="utf-8")
            _fsync_tree(tmp)
    if strategy.is_main:
        prune(output_dir, keep_last=keep_last, keep_models=keep_models)
    strategy.barrier()
    return final


#: How torch.save reports a failed write (a full disk, a file-size limit): a RuntimeError from its
#: C++ stream writer rather than an OSError.
_TORCH_WRITE_FAILURE = re.compile(r"iostream error|PytorchStreamWriter failed|file write failed|unexpected pos \d+")


def is_write_failure(exc: BaseException) -> bool:
    """True for an OSError, or for torch.save's RuntimeError when its output file could not be written."""
    chain = [exc, exc.__cause__, exc.__context__]
    return any(isinstance(e, OSError) or (isinstance(e, RuntimeError) and _TORCH_WRITE_FAILURE.search(str(e)))
               for e in chain if e is not None)


def write_failure_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return "a write failed: " + " ".join(str(exc).split())[:120]


def _size(folder: Path) -> int:
    return sum(_files(folder).values()) if folder.is_dir() else 0


def _save_failed(exc: BaseException, final: Path, output_dir: str | Path) -> CheckpointError:
    """What happened, where, and how much space it needs (the ``.tmp`` folder is gone already)."""
    done = [d for _, d in list_checkpoints(output_dir) if d != final and problem(d) is None]
    previous = done[-1] if done else None
    free = shutil.disk_usage(final.parent).free
    need = f"the previous checkpoint {previous} takes {_size(previous) / 2**20:.1f} MiB and is intact" \
        if previous else "no earlier checkpoint exists"
    return CheckpointError(f"{final}: checkpoint not saved ({write_failure_reason(exc)}); {free / 2**20:.1f} MiB free on "
                           f"{final.parent}, {need}: free space (or raise the file-size limit), or set "
                           "train.output_dir on a larger disk, then rerun to resume")


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
