"""train.py's memory gate is the library's (``mprm.train.loop.preflight`` / ``train(plan_check=)``):
a refusal is an exception that the error convention turns into the plan on stderr and exit 3."""

from __future__ import annotations

from pathlib import Path

import pytest

from mprm.config import load_config
from mprm.errors import UserError, run_entry
from mprm.train import plan
from mprm.train.loop import PlanRefusal, preflight

REPO = Path(__file__).resolve().parents[2]


def test_a_run_that_does_not_fit_is_refused_with_the_plan_and_exit_3(capsys):
    cfg = load_config(REPO / "configs/qwen2_5_vl_7b/full.yaml")
    text = plan.preflight(cfg, env={}, gpu_memory_gb=80)  # one GPU, no DeepSpeed: does not fit
    with pytest.raises(PlanRefusal) as info:
        preflight(cfg, env={}, gpu_memory_gb=80)
    assert str(info.value) == text and not isinstance(info.value, UserError)
    for debug in ([], ["--debug"]):  # the refusal is no error: the same with --debug
        assert run_entry("train.py", lambda: preflight(cfg, env={}, gpu_memory_gb=80), debug) == 3
        assert capsys.readouterr().err == text + "\n"  # as train.py printed it before the gate moved


def test_a_run_that_fits_or_runs_on_cpu_passes():
    cfg = load_config(REPO / "configs/qwen2_5_vl_7b/full.yaml")
    assert preflight(cfg, env={"ACCELERATE_USE_CPU": "true"}, gpu_memory_gb=80) is None
    zero3 = {"ACCELERATE_USE_DEEPSPEED": "true", "WORLD_SIZE": "4",
             "ACCELERATE_DEEPSPEED_CONFIG_FILE": str(REPO / "launch/deepspeed/zero3.json")}
    assert preflight(cfg, env=zero3, gpu_memory_gb=80) is None

