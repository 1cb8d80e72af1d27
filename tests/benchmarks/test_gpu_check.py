"""benchmarks/gpu_check.py with ``--device cpu --tiny``: the GPU check's code paths on tiny models.

It must train both backbones in both modes through train.py's code (the loss halves over 20
optimiser steps on the repeated batch), score through score_batch, account its FLOPs with the
plan's formula for the batch it built, and write no GPU figure (MFU, memory) on a CPU.
"""

from __future__ import annotations

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
