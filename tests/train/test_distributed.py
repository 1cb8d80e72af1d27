"""accelerate launch with 2 CPU processes (DDP, ZeRO-2, ZeRO-3) follows the 1-process loss curve."""

from __future__ import annotations

import json

import pytest
import torch

from _train_runs import STEPS, command, metrics, run, weights

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


@pytest.mark.parametrize("launch", ["cpu_ddp.yaml", "cpu_zero2.yaml", "cpu_zero3.yaml"])
def test_two_processes_match_one(launch, qwen_run, tmp_path, tiny_qwen_dir, synth_dir):
    out = tmp_path / launch.removesuffix(".yaml")
    run(command("configs/tiny/qwen2_5_vl.yaml", out, tiny_qwen_dir, synth_dir, launch=launch), timeout=400)
    one, two = metrics(qwen_run), metrics(out)
    assert [r["step"] for r in two] == list(range(1, STEPS + 1))
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5), (launch, a["step"])
        assert b["labelled_steps"] == a["labelled_steps"] and b["tokens"] == a["tokens"]
        assert b["lr"] == pytest.approx(a["lr"], rel=1e-12)
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["world_size"] == 2 and summary["mode"] == {"cpu_ddp.yaml": "ddp", "cpu_zero2.yaml": "zero2",
                                                               "cpu_zero3.yaml": "zero3"}[launch]
    ref, got = weights(qwen_run / "final"), weights(out / "final")
    assert ref.keys() == got.keys()
    worst = max((ref[k].float() - got[k].float()).abs().max().item() for k in ref)
    assert worst < 1e-3, worst
    from mprm.models import load_reward_model

    assert load_reward_model(out / "final").backbone_name == "qwen2_5_vl"
