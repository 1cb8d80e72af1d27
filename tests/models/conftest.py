"""Fixtures of the model-layer tests: small images, examples and tiny reward models."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from mprm.models.zoo.check import EXAMPLES, write_pictures

BACKBONES = ("qwen2_5_vl", "internvl")


@pytest.fixture(scope="session")
def image_root(tmp_path_factory) -> Path:
    return write_pictures(tmp_path_factory.mktemp("images"))


@pytest.fixture()
def examples() -> list[dict]:
    """The first three of the zoo check's examples (the text-only one is the zoo's own), fresh copies."""
    return copy.deepcopy(EXAMPLES[:3])


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
