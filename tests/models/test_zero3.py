"""Under DeepSpeed ZeRO-3 (one CPU process, gloo): build with `<prm>` resize, train a step, score."""

from __future__ import annotations

import json
import subprocess

import pytest

SCRIPT = r"""
import json, os, sys
import torch
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[3], RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
import deepspeed
deepspeed.init_distributed(dist_backend="gloo")
from transformers.integrations import HfDeepSpeedConfig
ds = {"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 3},
      "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "torch_adam": True}}}
keep = HfDeepSpeedConfig(ds)
from mprm.models import build_reward_model
m = build_reward_model(sys.argv[1])
f = m.formatter
partitioned = [n for n, p in m.named_parameters() if hasattr(p, "ds_id")]
engine, *_ = deepspeed.initialize(model=m, model_parameters=[p for p in m.parameters() if p.requires_grad], config=ds)
ex = {"id": "z", "images": ["red.png"], "question": "q", "steps": ["a", "b"], "labels": [1.0, 0.0]}
batch = f.collate([f.encode(ex, sys.argv[2])])
out = engine(**batch)
engine.backward(out.loss_sum)
engine.step()
w = m.hf_model.get_input_embeddings().weight
with deepspeed.zero.GatheredParameters([w]):
    rows = w.shape[0]
print(json.dumps({"partitioned": len(partitioned), "rows": rows, "prm": f.prm_token_id,
                  "n": int(out.n_labelled), "scores": out.scores.tolist(), "loss": float(out.loss_sum)}))
"""


@pytest.mark.slow
@pytest.mark.distributed
def test_zero3_build_train_step(tiny_qwen_dir, image_root, python_exe, tmp_path):
    script = tmp_path / "z3.py"
    script.write_text(SCRIPT)
    run = subprocess.run([python_exe, str(script), str(tiny_qwen_dir), str(image_root), "29561"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    res = json.loads(run.stdout.strip().splitlines()[-1])
    assert res["partitioned"] > 0
    assert res["rows"] == -(-(res["prm"] + 1) // 64) * 64 and res["n"] == 2 and len(res["scores"]) == 2
    assert 0.0 < res["loss"] < 10.0
