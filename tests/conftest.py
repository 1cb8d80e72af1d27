"""Shared fixtures: synthetic data and tiny backbones, built once per test session.

Every tiny model goes to disk through ``save_pretrained`` and is loaded back by the same code a
real checkpoint uses. Nothing here downloads anything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# tests/ on the path: shared helpers such as _launch (the one run_train of the training launches)
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One intra-op thread per process: the suite runs 2 xdist workers (and 2-process launches) on
# 2 cores, and oversubscribed OpenMP threads spin-wait each other (a tiny training step went
# from 0.27 s to 2.8 s). Set before torch is imported; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(config, items):
    if not any(item.get_closest_marker("gpu") for item in items):
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def python_exe() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory) -> Path:
    """A small synthetic corpus + benchmark + images (``mprm synth`` layout)."""
    from mprm.data.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, sources=3, rollouts=60, benchmark_items=24, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    from mprm.models.tiny import build_tiny

    out = tmp_path_factory.mktemp("tiny_qwen")
    build_tiny("qwen2_5_vl", out, seed=0)
    return out


@pytest.fixture(scope="session")
def tiny_internvl_dir(tmp_path_factory) -> Path:
    from mprm.models.tiny import build_tiny

    out = tmp_path_factory.mktemp("tiny_internvl")
    build_tiny("internvl", out, seed=0)
    return out


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory, request):
    """``zoo_dir(name)``: the tiny checkpoint of a zoo family (mprm.models.zoo.TINY), built once per
    session; ``qwen2_5_vl`` and ``internvl`` are the session's ``tiny_qwen_dir`` / ``tiny_internvl_dir``."""
    from mprm.models.tiny import build_tiny

    shared = {"qwen2_5_vl": "tiny_qwen_dir", "internvl": "tiny_internvl_dir"}
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name in shared:
            return request.getfixturevalue(shared[name])
        if name not in built:
            built[name] = build_tiny(name, tmp_path_factory.mktemp(f"zoo_{name}"), seed=0)
        return built[name]

    return get
