"""The shared 1-process reference run of the training tests (tiny Qwen2.5-VL, synthetic data)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _train_runs import command, run  # noqa: E402


@pytest.fixture(scope="session")
def qwen_run(tmp_path_factory, tiny_qwen_dir, synth_dir):
    """train.py on tiny Qwen2.5-VL, 1 process; the distributed and resume tests compare to it."""
    out = tmp_path_factory.mktemp("train") / "qwen"
    run(command("configs/tiny/qwen2_5_vl.yaml", out, tiny_qwen_dir, synth_dir))
    return out
