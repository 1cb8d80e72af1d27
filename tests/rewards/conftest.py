"""Fixtures of the reward tests: a tiny reward model trained for a few steps on the synthetic
corpus and saved, pictures on disk, and the synthetic benchmark's image questions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

TRAIN_STEPS = 12
TRAIN_BATCH = 8


@pytest.fixture(scope="session")
def trained_rm_dir(tiny_qwen_dir, synth_dir, tmp_path_factory) -> Path:
    """A tiny Qwen2.5-VL reward model after a few AdamW steps on hard MC labels (score > 0), saved.

    The corpus rows are read as the file format documents them (docs/data_formats.md), so the
    fixture does not depend on the data layer's readers.
    """
    from mprm.models import build_reward_model

    examples = []
    for path in sorted((synth_dir / "annotations").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            steps = row["steps_with_score"]
            examples.append({"id": row["id"], "images": [row["image"]], "question": row["question_orig"],
                             "steps": [s["step"] for s in steps], "labels": [float(s["score"] > 0) for s in steps]})
    torch.manual_seed(0)
    model = build_reward_model(tiny_qwen_dir, dtype=torch.float32)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for step in range(TRAIN_STEPS):
        chunk = examples[step * TRAIN_BATCH:(step + 1) * TRAIN_BATCH]
        out = model(**model.formatter.collate([model.formatter.encode(ex, synth_dir) for ex in chunk]))
        (out.loss_sum / out.n_labelled).backward()
        opt.step()
        opt.zero_grad()
    out_dir = tmp_path_factory.mktemp("trained_rm")
    model.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def reward_model(trained_rm_dir):
    from mprm.models import load_reward_model

    return load_reward_model(trained_rm_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="session")
def bench_rows(synth_dir) -> list[dict]:
    """The synthetic benchmark's rows (image paths relative to ``synth_dir``)."""
    lines = (synth_dir / "benchmark" / "test.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def pictures(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pictures")
    Image.new("RGB", (60, 40), (200, 10, 10)).save(root / "red.png")
    img = Image.new("RGB", (90, 50), (10, 10, 200))
    for x in range(0, 90, 7):
        for y in range(50):
            img.putpixel((x, y), (250, 250, 0))
    img.save(root / "stripes.png")
    Image.new("L", (30, 70), 128).save(root / "grey.png")  # not RGB: both paths convert it the same way
    return root
