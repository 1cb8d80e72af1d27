"""train.py end to end on both tiny backbones (CPU): loss falls, trainable weights move, the frozen
vision tower does not, the run folder is complete, the final model loads; and a run killed with
SIGKILL, then resumed, ends with the weights and the data order of an unbroken run."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch

from _train_runs import REPO, STEPS, command, env, metrics, run, weights

pytestmark = pytest.mark.slow


def _vision_and_rest(sd: dict, vision: str, projector: str) -> tuple[list[str], list[str]]:
    vis = [k for k in sd if vision in k and projector not in k]
    rest = [k for k in sd if k not in vis and "embed_tokens" not in k and "lm_head" not in k]
    return vis, rest


def _check_run(out, base_dir, vision: str, projector: str) -> None:
    rows = metrics(out)
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for key in ("loss", "accuracy", "lr", "grad_norm", "samples_per_s", "tokens_per_s", "padding_ratio", "samples",
                "tokens", "wall_s"):
        assert key in rows[0]
    first, last = rows[0]["loss"], sum(r["loss"] for r in rows[-4:]) / 4
    assert first > 0.5 and last < 0.6 * first, [round(r["loss"], 3) for r in rows]
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["optimizer_steps"] == STEPS and summary["samples"] == 8 * STEPS and summary["world_size"] == 1
    assert (out / "config.yaml").is_file() and json.loads((out / "run_info.json").read_text())["versions"]["torch"]
    assert (out / "selection" / "manifest.jsonl").is_file()
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert ckpts == ["step-000004", "step-000008", "step-000010"]
    assert not (out / "checkpoints" / "step-000004" / "state").exists()  # pruned to keep_last=2
    assert (out / "checkpoints" / "step-000004" / "model" / "mprm_config.json").is_file()

    base, final = weights(base_dir), weights(out / "final")
    vis, rest = _vision_and_rest(base, vision, projector)
    assert vis and rest
    assert all(torch.equal(base[k], final[k]) for k in vis), "frozen vision tower changed"
    changed = [k for k in rest if k in final and not torch.equal(base[k], final[k])]
    assert len(changed) >= 0.9 * len(rest), f"only {len(changed)} of {len(rest)} trainable tensors changed"


def test_qwen_trains(qwen_run, tiny_qwen_dir):
    _check_run(qwen_run, tiny_qwen_dir, "visual", "merger")
    from mprm.models import load_reward_model

    model = load_reward_model(qwen_run / "final")
    assert model.backbone_name == "qwen2_5_vl"


def test_internvl_trains_with_image_workers(tmp_path, tiny_internvl_dir, synth_dir):
    out = tmp_path / "ivl"
    run(command("configs/tiny/internvl.yaml", out, tiny_internvl_dir, synth_dir, "data.num_workers=1"))
    _check_run(out, tiny_internvl_dir, "vision_tower", "multi_modal_projector")


def test_sigkill_then_resume_equals_unbroken_run(qwen_run, tmp_path, tiny_qwen_dir, synth_dir):
    out = tmp_path / "killed"
    cmd = command("configs/tiny/qwen2_5_vl.yaml", out, tiny_qwen_dir, synth_dir)
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            rows = metrics(out) if (out / "metrics.jsonl").is_file() else []
            if len(rows) >= 6:  # past the step-4 checkpoint, before the step-8 one completes
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert not (out / "final").exists()
    run(cmd)  # train.resume=auto
    info_rows = metrics(out)
    ref_rows = metrics(qwen_run)
    assert [r["step"] for r in info_rows] == list(range(1, STEPS + 1))
    assert [round(r["loss"], 6) for r in info_rows] == [round(r["loss"], 6) for r in ref_rows]
    assert [r["tokens"] for r in info_rows] == [r["tokens"] for r in ref_rows]  # same data order
    ref, got = weights(qwen_run / "final"), weights(out / "final")
    assert ref.keys() == got.keys()
    worst = max((ref[k].float() - got[k].float()).abs().max().item() for k in ref)
    assert worst <= 1e-6, worst
