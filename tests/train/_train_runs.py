"""Helpers of the end-to-end training tests: run train.py (plain or via accelerate launch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from _launch import run_train

REPO = Path(__file__).resolve().parents[2]
STEPS = 10


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.update({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
              "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
              "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR",
                                                     str(Path.home() / ".cache" / "torch_extensions"))})
    return e


def command(config: str, out: Path, model: Path, synth: Path, *extra: str, launch: str | None = None) -> list[str]:
    # port 0: accelerate picks a free port, so launches running side by side (pytest -n 2) never collide
    head = [sys.executable, "-m", "accelerate.commands.launch", "--main_process_port", "0",
            "--config_file", str(REPO / "launch" / launch)] \
        if launch else [sys.executable]
    return head + [str(REPO / "train.py"), "--config", str(REPO / config), f"model.path={model}",
                   f"data.train={synth / 'annotations'}", f"data.image_root={synth}", f"train.output_dir={out}",
                   f"train.max_steps={STEPS}", "train.save_every=4", "logging.progress_bar=false", *extra]


def run(cmd: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    proc = run_train(cmd, cwd=REPO, env=env(), timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out
