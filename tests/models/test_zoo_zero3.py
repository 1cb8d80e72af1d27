"""Two zoo families besides Qwen2.5-VL trained by ``train.py`` under DeepSpeed ZeRO-3 with two CPU
processes (``launch/cpu_zero3.yaml``): Gemma 3 (tied embeddings, ``token_type_ids`` made per batch)
and Idefics3 (per-item stacks of squares padded across the batch, ``pixel_attention_mask``). The
partitioned run must follow the 1-process run step by step and end at the same weights."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from _launch import run_train

pytestmark = [pytest.mark.slow, pytest.mark.distributed]
STEPS = 2


def _train(repo: Path, out: Path, model: Path, backbone: str, synth: Path, launch: str | None) -> list[dict]:
    head = [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port", "0",  # a free port
            "--config_file", str(repo / "launch" / launch)] \
        if launch else [sys.executable]
    cmd = head + [str(repo / "train.py"), "--config", str(repo / "configs/tiny/qwen2_5_vl.yaml"),
                  f"model.path={model}", f"model.backbone={backbone}", f"data.train={synth / 'annotations'}",
                  f"data.image_root={synth}", f"train.output_dir={out}", f"train.max_steps={STEPS}",
                  "train.global_batch_size=4", "train.micro_batch_size=2", "logging.progress_bar=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = run_train(cmd, cwd=repo, env=env, timeout=500)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}\n{proc.stderr[-5000:]}"
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return {k: v for f in sorted(folder.glob("*.safetensors")) for k, v in load_file(str(f)).items()}


@pytest.mark.parametrize("family", ["gemma3", "idefics3"])
def test_zero3_two_processes_follow_one(family, zoo_dir, synth_dir, repo_root, tmp_path):
    from transformers import AutoTokenizer

    from mprm.models import load_reward_model

    model = zoo_dir(family)
    one = _train(repo_root, tmp_path / "one", model, family, synth_dir, None)
    two = _train(repo_root, tmp_path / "zero3", model, family, synth_dir, "cpu_zero3.yaml")
    assert [r["step"] for r in two] == list(range(1, STEPS + 1))
    for a, b in zip(one, two):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4, abs=1e-5), (family, a["step"])
        assert b["labelled_steps"] == a["labelled_steps"] and b["tokens"] == a["tokens"]
    assert json.loads((tmp_path / "zero3" / "run_summary.json").read_text())["mode"] == "zero3"
    ref, got = _weights(tmp_path / "one" / "final"), _weights(tmp_path / "zero3" / "final")
    assert ref.keys() == got.keys() and all(ref[k].shape == got[k].shape for k in ref)
    # rows past the tokenizer pad the grown vocabulary (D-MODELS-11): no id reads them, and their
    # random start differs between a plain and a partitioned resize
    n_tok = len(AutoTokenizer.from_pretrained(tmp_path / "one" / "final"))
    worst = max((ref[k][:n_tok] - got[k][:n_tok] if k.endswith(("embed_tokens.weight", "lm_head.weight"))
                 else ref[k] - got[k]).float().abs().max().item() for k in ref)
    assert worst < 1e-3, worst
    assert load_reward_model(tmp_path / "zero3" / "final").backbone_name == family
