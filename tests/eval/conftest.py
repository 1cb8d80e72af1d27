"""Fixtures of the evaluation tests: a tiny saved reward model and a way to run the real eval.py.

eval.py runs in subprocesses with OMP_NUM_THREADS=1, so 1-process, 2-process and resumed runs use
the same kernels and can be compared bit for bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

TWO_CPU_PROCESSES = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
                     "--mixed_precision", "no", "--dynamo_backend", "no", "--multi_gpu",
                     "--main_process_port", "0"]  # a free port: launches side by side (pytest -n 2) never collide


@pytest.fixture(scope="session")
def rm_dir(tiny_qwen_dir, tmp_path_factory) -> Path:
    """A reward model saved by ``save_pretrained`` on the tiny Qwen2.5-VL backbone (untrained head)."""
    from mprm.models import build_reward_model

    out = tmp_path_factory.mktemp("reward_model")
    build_reward_model(tiny_qwen_dir).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def eval_cmd(repo_root) -> Callable[..., tuple[list[str], dict[str, str]]]:
    """``eval_cmd(*args, launcher=None, env=None)`` -> (argv, environment) of an eval.py run."""

    def build(*args: object, launcher: list[str] | None = None, env: dict[str, str] | None = None):
        cmd = (launcher or [sys.executable]) + [str(repo_root / "eval.py"), *map(str, args)]
        return cmd, {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                     **(env or {})}

    return build


@pytest.fixture(scope="session")
def run_eval(eval_cmd) -> Callable[..., subprocess.CompletedProcess]:
    """``run_eval(*args, launcher=None, env=None)``: eval.py in a subprocess, output captured."""

    def run(*args: object, launcher: list[str] | None = None, env: dict[str, str] | None = None):
        cmd, full_env = eval_cmd(*args, launcher=launcher, env=env)
        return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=600)

    return run


@pytest.fixture(scope="session")
def two_cpu_processes() -> list[str]:
    """The launcher prefix of a 2-process CPU run (gloo; with ACCELERATE_USE_CPU=true in the environment)."""
    return list(TWO_CPU_PROCESSES)
