"""Running train.py in a test subprocess, with one narrowly scoped retry.

A two-process CPU run under ZeRO-3 once lost a rank to ``terminate called without an active
exception`` (SIGABRT in native code, torch's or DeepSpeed's CPU collectives, after several good
optimiser steps) in a full suite run; it was never reproduced on demand (6 of 6 reruns passed;
docs/training.md "Known issue", decisions.md D-TRAIN-10). :func:`run_train` retries such a run once, from scratch,
and only when all three hold: a rank died by SIGABRT with that message, and the run's output
folder did not exist before it (a fresh run, never a resume whose meaning a retry would change).
Any other failure, and a second abort, fails the test as before; a retry is reported as a warning
in the pytest summary.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

KNOWN_ABORT = "terminate called without an active exception"


def _output_dir(cmd: list[str]) -> Path | None:
    for arg in cmd:
        if arg.startswith("train.output_dir="):
            return Path(arg.split("=", 1)[1])
    return None


def known_abort(proc: subprocess.CompletedProcess) -> bool:
    """A rank lost to the CPU collectives' abort (SIGABRT with the message above)."""
    return proc.returncode != 0 and KNOWN_ABORT in proc.stderr and "SIGABRT" in proc.stderr


def run_train(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """``subprocess.run(cmd, capture_output=True, text=True, **kwargs)`` with the one retry above."""
    out = _output_dir(cmd)
    fresh = out is not None and not out.exists()
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if fresh and known_abort(proc):
        warnings.warn(f"retrying once after a rank aborted ({KNOWN_ABORT!r}): {' '.join(cmd)}")
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    return proc
