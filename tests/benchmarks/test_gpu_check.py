"""benchmarks/gpu_check.py: with ``--device cpu --tiny`` its code paths on tiny models, and the
real-size checkpoint folder and batch it builds (without weights).

With ``--tiny`` it must train both backbones in both modes through train.py's code (the loss halves over 20
optimiser steps on the repeated batch), score through score_batch, account its FLOPs with the
plan's formula for the batch it built, and write no GPU figure (MFU, memory) on a CPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_with_tiny_models(tmp_path):
    out = tmp_path / "gpu_check.json"
    cmd = [sys.executable, str(REPO / "benchmarks/gpu_check.py"), "--device", "cpu", "--tiny", "--seq-len", "384",
           "--score-rollouts", "4", "--score-batch", "2", "--output", str(out)]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["measured"] is False and report["peak_flops"] is None
    runs = {(r["model"], r["mode"]): r for r in report["training"]}
    assert set(runs) == {(m, mode) for m in ("qwen2_5_vl_7b", "internvl2_5_8b") for mode in ("full", "lora")}
    for (model, mode), r in runs.items():
        assert r["status"] == "ok" and r["loss_falls"] and len(r["losses"]) == 20, (model, mode, r.get("losses"))
        assert r["losses"][-1] < 0.5 * r["losses"][0]
        assert r["tokens_per_micro_batch"] == 384 + (384 - 64)  # the second rollout is 64 tokens shorter
        assert r["tokens_per_s"] > 0 and r["flops_per_micro_batch"] > 0
        assert r["mfu"] is None and r["peak_memory_gb"] is None
        assert r["flops_split"]["lora"] > 0 if mode == "lora" else r["flops_split"]["lora"] == 0
        assert r["plan_fits"] and r["accumulation_of_run"] == 512 // 2
    assert {s["model"] for s in report["scoring"]} == {"qwen2_5_vl_7b", "internvl2_5_8b"}
    assert all(s["rollouts"] == 4 and s["rollouts_per_s"] > 0 for s in report["scoring"])
    assert "rollouts/s at batch 2" in proc.stdout and "not a GPU run" in proc.stdout


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "benchmarks/gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name,image_tokens,flops", [("qwen2_5_vl_7b", 234, 721.73e12),
                                                     ("internvl2_5_8b", 1792, 799.04e12)])
def test_real_size_checkpoint_and_batch_without_weights(tmp_path, name, image_tokens, flops):
    """What the GPU run builds, short of the weights: the release's config numbers, the paper's image
    settings (a 1024x768 image: Qwen2.5-VL 18 x 13 merged patches under 200,704 pixels, InternVL six
    tiles + thumbnail of 256 tokens), rollouts of exactly 8192 and 8128 tokens."""
    from transformers import AutoConfig, AutoTokenizer

    from mprm.models.backbones import get_backbone
    from mprm.models.prompting import Formatter
    from mprm.train.plan import release_config, text_dims, train_flops, vision_dims

    g = _gpu_check()
    backbone, _, release = g.MODELS[name]
    ckpt = g.synthetic_checkpoint(backbone, release, tmp_path / "ckpt", tiny=False)
    config = AutoConfig.from_pretrained(ckpt)
    assert text_dims(config) == text_dims(release_config(release)[1])
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    tokenizer.add_tokens(["<prm>"], special_tokens=True)
    spec = get_backbone(backbone)
    settings = {"max_tiles": 6} if backbone == "internvl" else {"min_pixels": 784, "max_pixels": 200704}
    f = Formatter(tokenizer=tokenizer, spec=spec, images=spec.make_images(ckpt, config, tokenizer, settings),
                  max_length=8192)
    image = g.make_image((1024, 768), tmp_path)
    examples = g.synthetic_examples(f, n=2, seq_len=8192, steps=6, image_size=image.size, shorter_by=64)
    items = [f.attach_images(f.encode_text(ex, image_sizes=[image.size]), [image]) for ex in examples]
    assert [it["image_token_counts"] for it in items] == [[image_tokens]] * 2
    batch = f.collate(items)
    assert batch["attention_mask"].sum(1).tolist() == [8192, 8128] and batch["prm_positions"].numel() == 12
    images = ([tuple(r) for r in batch["image_grid_thw"].tolist()] if backbone == "qwen2_5_vl"
              else [(batch["pixel_values"].shape[0],)])
    total = train_flops(text_dims(config), vision_dims(backbone, config), seq_lens=[8192, 8128], n_prm=12,
                        images=images)["total"]
    assert total == pytest.approx(flops, rel=1e-5)  # pinned; the formula itself is checked in tests/train/test_plan.py
