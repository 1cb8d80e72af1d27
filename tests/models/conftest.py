"""Fixtures of the model-layer tests: small images, examples and tiny reward models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

BACKBONES = ("qwen2_5_vl", "internvl")


@pytest.fixture(scope="session")
def image_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    Image.new("RGB", (60, 40), (200, 10, 10)).save(root / "red.png")
    Image.new("RGB", (30, 90), (10, 200, 10)).save(root / "green.png")
    img = Image.new("RGB", (120, 50), (10, 10, 200))
    for x in range(0, 120, 7):
        for y in range(50):
            img.putpixel((x, y), (250, 250, 0))
    img.save(root / "stripes.png")
    return root


@pytest.fixture()
def examples() -> list[dict]:
    return [
        {"id": "one", "images": ["red.png"], "question": "<image 1> What is 2+2?",
         "steps": ["First, add the numbers.", "2 + 2 = 5.", "Answer: 5"], "labels": [1.0, 0.0, 0.0]},
        {"id": "two", "images": ["stripes.png"], "question": "<image>\nCount the stripes.",
         "steps": ["There are many stripes.", "Answer: 18"], "labels": [0.75, -1]},
        {"id": "three", "images": ["red.png", "green.png"], "question": "Which image is red?",
         "steps": ["The first one is red."], "labels": [1.0]},
    ]


@pytest.fixture(params=BACKBONES)
def backbone_name(request) -> str:
    return request.param


@pytest.fixture()
def tiny_dir(backbone_name, tiny_qwen_dir, tiny_internvl_dir) -> Path:
    return tiny_qwen_dir if backbone_name == "qwen2_5_vl" else tiny_internvl_dir


@pytest.fixture()
def reward_model(tiny_dir):
    from mprm.models import build_reward_model

    torch.manual_seed(0)
    return build_reward_model(tiny_dir, dtype=torch.float32)
