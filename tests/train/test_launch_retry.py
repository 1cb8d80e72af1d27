"""The test harness's one retry (tests/_launch.py) is as narrow as it says: a fresh run whose
rank aborted with the known message is run again once; anything else is returned as it failed."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

import pytest
from _launch import KNOWN_ABORT, run_train

# A stand-in for train.py: writes its output folder, counts its attempts there and in a counter
# file beside it, and fails the way it is told on its first attempt.
SCRIPT = r'''
import sys
from pathlib import Path
mode, counter = sys.argv[1], Path(sys.argv[2])
out = Path(sys.argv[3].split("=", 1)[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
out.mkdir(exist_ok=True)
(out / f"attempt{n}").write_text("")
if n == 1 and mode == "abort":
    sys.exit("TERMINATE\nrank 1 exitcode: -6 (SIGABRT)")
if mode == "other":
    sys.exit("ValueError: something else")
'''


def _run(tmp_path: Path, mode: str, out: Path):
    script = tmp_path / "fake_train.py"
    script.write_text(SCRIPT.replace("TERMINATE", KNOWN_ABORT))
    counter = tmp_path / "count"
    with pytest.warns(UserWarning, match="retrying once") if mode == "abort" and not out.exists() else nullcontext():
        proc = run_train([sys.executable, str(script), mode, str(counter), f"train.output_dir={out}"], timeout=60)
    return proc, int(counter.read_text())


def test_a_fresh_run_lost_to_the_known_abort_runs_once_more_from_scratch(tmp_path):
    out = tmp_path / "run"
    proc, attempts = _run(tmp_path, "abort", out)
    assert proc.returncode == 0 and attempts == 2
    assert sorted(p.name for p in out.iterdir()) == ["attempt2"]  # the first attempt's folder was removed


def test_a_resumed_run_is_not_retried(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    proc, attempts = _run(tmp_path, "abort", out)
    assert proc.returncode != 0 and attempts == 1 and KNOWN_ABORT in proc.stderr


def test_another_failure_is_not_retried(tmp_path):
    proc, attempts = _run(tmp_path, "other", tmp_path / "run")
    assert proc.returncode != 0 and attempts == 1 and "something else" in proc.stderr
