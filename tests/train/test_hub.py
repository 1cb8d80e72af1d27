"""Hub ids everywhere: a tiny model placed in the Hugging Face cache layout
(``models--ORG--NAME/snapshots/<rev>/``, ``refs/main``) is trained with ``model.path=ORG/NAME``
under HF_HUB_OFFLINE=1, and eval.py scores the result."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from _train_runs import REPO, command, env

REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    from mprm.models.tiny import build_tiny

    home = tmp_path_factory.mktemp("hf_home")
    repo = home / "hub" / "models--tiny-org--tiny-qwen"
    build_tiny("qwen2_5_vl", repo / "snapshots" / REV, seed=0)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REV)
    return home


def test_hub_id_resolves_from_the_cache_offline(hf_home, monkeypatch):
    from mprm.models import build_reward_model
    from mprm.models.hub import CheckpointNotFound, resolve_checkpoint

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hf_home / "hub"))  # read at import time
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_checkpoint("tiny-org/tiny-qwen") == hf_home / "hub" / "models--tiny-org--tiny-qwen" / "snapshots" / REV
    assert resolve_checkpoint("tiny-org/tiny-qwen", revision=REV).name == REV
    model = build_reward_model("tiny-org/tiny-qwen")
    assert model.backbone_name == "qwen2_5_vl" and model.base_model_path == "tiny-org/tiny-qwen"
    with pytest.raises(CheckpointNotFound, match=r"hub id 'tiny-org/absent' \(revision main\) is not in the Hugging "
                                                 r"Face cache \(HF_HUB_OFFLINE=1\)"):
        resolve_checkpoint("tiny-org/absent")
    with pytest.raises(CheckpointNotFound, match="no such checkpoint folder"):
        resolve_checkpoint("./runs/nothing/here")


@pytest.mark.slow
def test_train_py_with_a_hub_id_then_eval_py(hf_home, tmp_path, synth_dir):
    e = {**env(), "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "run"
    cmd = command("configs/tiny/qwen2_5_vl.yaml", out, "tiny-org/tiny-qwen", synth_dir, "train.max_steps=2")
    proc = subprocess.run(cmd, cwd=REPO, env=e, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "  path: tiny-org/tiny-qwen\n" in (out / "config.yaml").read_text()
    ev = subprocess.run([sys.executable, str(REPO / "eval.py"), "--model", str(out / "final"),
                         "--benchmark", str(synth_dir / "benchmark" / "test.jsonl"), "--image-root", str(synth_dir),
                         "--output", str(tmp_path / "eval")], cwd=REPO, env=e, capture_output=True, text=True,
                        timeout=300)
    assert ev.returncode == 0, ev.stderr[-4000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["results"]["fixed"]["n_steps"] > 0
